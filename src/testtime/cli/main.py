"""The ``testtime`` command. Each sub-command lives in its own module and
registers itself on :data:`app`; :func:`main` turns expected failures into one
clear line and a non-zero exit instead of a traceback."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

import typer

from testtime.backends.base import BackendError
from testtime.registry import UnknownName

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Spend compute at test time: scale, learn, adapt.",
    # Click's plain help wraps descriptions but never truncates an option's name (rich's
    # tables cut them at 80 columns) and shows every default.
    rich_markup_mode=None,
    context_settings={"show_default": True},
)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"testtime {version('testtime')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("testtime (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    _: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Spend compute at test time: scale, learn, adapt."""

# Sub-command modules register themselves on `app` at import time.
from testtime.cli import adapt as _adapt  # noqa: E402,F401
from testtime.cli import agent as _agent  # noqa: E402,F401
from testtime.cli import evolve as _evolve  # noqa: E402,F401
from testtime.cli import learn as _learn  # noqa: E402,F401
from testtime.cli import run as _run  # noqa: E402,F401
from testtime.cli import scale as _scale  # noqa: E402,F401
from testtime.cli import serve as _serve  # noqa: E402,F401
from testtime.cli import show as _show  # noqa: E402,F401
from testtime.cli import zoo as _zoo  # noqa: E402,F401


class UserError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def main() -> None:
    try:
        app()
    except (UnknownName, UserError, BackendError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
