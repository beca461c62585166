"""A run as one self-contained HTML page: settings, the summary table, the plots
(embedded as base64 PNG) and, per problem, every candidate with its answer, scores and
cost, the vote over the candidates' answers and what each strategy chose.

No scripts and no external resources: the file opens anywhere, offline. Every value
from the run is escaped. Problems and candidate texts are in ``<details>`` elements.
"""

from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path
from typing import Any

from testtime.viewer.load import ProblemView, RunView, vote

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:72em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;vertical-align:top;width:48%;margin:.3em 1% .3em 0}
img{max-width:100%;border:1px solid #eee}
details{margin:.3em 0}summary{cursor:pointer}pre{white-space:pre-wrap;margin:0;font-size:12px}
.ok{color:#176f2c;font-weight:600}.bad{color:#a11}.note{color:#8a5a00}
"""


def fmt(value: Any) -> str:
    """A cell's text: floats to 3 decimals (large ones compact), pairs as intervals."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if abs(value) >= 1e5:
            return f"{value:.3g}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
    if isinstance(value, tuple | list) and len(value) == 2:
        return "[" + ", ".join("–" if v is None else f"{v:.2f}" for v in value) + "]"
    return str(value)


def _table(columns: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(fmt(v))}</td>' if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{escape(fmt(v))}</td>"
            for v in row
        )  # fmt: skip
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="{cls}"><tr>{head}</tr>{"".join(body)}</table>'


def _image(path: Path) -> str:
    try:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as err:
        return f'<p class="note">{escape(path.name)}: unreadable ({escape(str(err))})</p>'
    name = escape(path.name)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def _mark(correct: Any) -> str:
    if correct is True:
        return '<span class="ok">✓</span>'
    if correct is False:
        return '<span class="bad">✗</span>'
    return "–"


def _candidates(candidates: list[dict[str, Any]]) -> str:
    rows = []
    for i, c in enumerate(candidates):
        scores = c.get("step_scores")
        step = ", ".join(fmt(s) for s in scores) if isinstance(scores, list) else "–"
        text = escape(str(c.get("text", "")))
        rows.append(
            f"<tr><td class=num>{i}</td><td>{escape(fmt(c.get('answer')))}</td>"
            f"<td>{_mark(c.get('correct'))}</td><td class=num>{escape(fmt(c.get('score')))}</td>"
            f"<td>{escape(step)}</td><td class=num>{escape(fmt(c.get('num_tokens')))}</td>"
            f"<td>{escape(fmt(c.get('finish_reason')))}</td>"
            f"<td><details><summary>text</summary><pre>{text}</pre></details></td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in
                   ("#", "answer", "correct", "score", "step scores", "tokens", "finish", "text"))  # fmt: skip
    return f'<table class="candidates"><tr>{head}</tr>{"".join(rows)}</table>'


def _vote(candidates: list[dict[str, Any]], reference: Any) -> str:
    total = len(candidates)
    parts = []
    for answer, count in vote(candidates):
        label = escape(fmt(answer))
        if reference is not None and answer is not None and str(answer) == str(reference):
            label = f'<span class="ok">{label}</span>'
        parts.append(f"{label}: {count}/{total}")
    return '<p class="vote">vote: ' + ", ".join(parts) + "</p>"


def _problem(problem: ProblemView) -> str:
    entries = [
        [e.strategy, e.n, e.answer, e.accuracy, e.compute.get("generated_tokens"),
         e.compute.get("verifier_tokens"), e.compute.get("model_calls"), e.compute.get("wall_s")]
        for e in problem.entries
    ]  # fmt: skip
    hits = [e.accuracy for e in problem.entries if isinstance(e.accuracy, int | float)]
    summary = (f"{escape(problem.problem_id)} (difficulty {escape(fmt(problem.difficulty))}, "
               f"reference {escape(fmt(problem.reference))}"
               + (f", mean accuracy {sum(hits) / len(hits):.2f}" if hits else "") + ")")  # fmt: skip
    parts = [f'<details class="problem" id="{escape(problem.problem_id, quote=True)}"><summary>{summary}</summary>']
    if problem.prompt:
        parts.append(f"<pre>{escape(problem.prompt)}</pre>")
    parts.append(_table(["strategy", "N", "answer", "accuracy", "generated tokens", "verifier tokens",
                         "model calls", "wall s"], entries, "entries"))  # fmt: skip
    for members, candidates in problem.pools():
        parts.append(f"<h4>candidates of {escape(', '.join(members))}</h4>")
        parts.append(_vote(candidates, problem.reference))
        parts.append(_candidates(candidates))
    if not problem.pools():
        parts.append('<p class="note">no candidates recorded for this problem</p>')
    parts.append("</details>")
    return "\n".join(parts)


def render(view: RunView) -> str:
    """The whole page."""
    title = f"testtime {view.kind} run — {view.path.name}"
    settings = ", ".join(f"{k}={v}" for k, v in view.config.items())
    body = [f"<h1>{escape(title)}</h1>", f"<p>{escape(str(view.path))}</p>"]
    if settings:
        body.append(f"<p><b>settings</b>: {escape(settings)}</p>")
    body += [f'<p class="note">{escape(n)}</p>' for n in view.notes]
    body += ["<h2>summary</h2>", _table(view.columns, view.rows, "summary")]
    for name, columns, rows in view.tables:
        body += [f"<h2>{escape(name)}</h2>", _table(columns, rows)]
    if view.plots:
        body.append("<h2>plots</h2>")
        body += [_image(p) for p in view.plots]
    if view.problems:
        body.append(f"<h2>problems ({len(view.problems)})</h2>")
        body += [_problem(p) for p in view.problems]
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
