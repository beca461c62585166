"""``testtime show DIR``: the summary table of a run (scale, learn or adapt) and a
self-contained HTML page with its plots and every candidate of every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from testtime.cli.main import app


@app.command()
def show(
    run: Annotated[Path, typer.Argument(help="a run directory (testtime scale/learn/adapt --out)")],
    html: Annotated[
        Path | None, typer.Option(help="where to write the page (default: DIR/view.html)")
    ] = None,
    no_html: Annotated[bool, typer.Option("--no-html", help="print the table only")] = False,
) -> None:
    """Print a run's summary table and write its HTML page (plots, candidates, votes)."""
    from rich.console import Console
    from rich.table import Table

    from testtime.store import atomic_write_text
    from testtime.viewer import load_run, render
    from testtime.viewer.html import fmt

    view = load_run(run)
    table = Table(*view.columns, title=f"{view.kind} run {run}")
    for row in view.rows:
        table.add_row(*(fmt(v) for v in row))
    console = Console()
    console.print(table)
    for note in view.notes:
        console.print(f"note: {note}", style="yellow", markup=False)
    if no_html:
        return
    path = html or run / "view.html"
    atomic_write_text(path, render(view))
    console.print(f"page: {path}  ({len(view.problems)} problems, {len(view.plots)} plots)", markup=False)
