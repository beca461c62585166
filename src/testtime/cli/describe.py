"""Per-strategy / per-method help: every option of a registered component with its
type, its default and a note, under the paper it comes from.

The options are read from the component itself (a constructor's signature, or the
fields of a method's config dataclass), so the help cannot drift from the code; the
paper is the first paragraph of the defining module's docstring (where this project
cites it), and a field's note is the comment written after it in the source.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class OptionInfo:
    name: str
    type: str
    default: Any
    note: str = ""


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line ('' without one)."""
    if not doc:
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def paper_of(obj: Any) -> str:
    """Where ``obj`` comes from: its module's docstring's first paragraph, else its own."""
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    return first_paragraph(getattr(module, "__doc__", None)) or first_paragraph(obj.__doc__)


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


_FIELD_COMMENT = re.compile(r"^\s*(\w+)\s*:[^#]*#\s*(.+)$")


def field_comments(cls: type) -> dict[str, str]:
    """``name: type = default  # note`` → {name: note}, from the class's source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    found = (_FIELD_COMMENT.match(line) for line in source.splitlines())
    return {m.group(1): m.group(2).strip() for m in found if m}


def signature_options(factory: Callable[..., Any], skip: Iterable[str] = ()) -> list[OptionInfo]:
    """Keyword options of a constructor or function (``skip``: ones the caller supplies)."""
    skipped = set(skip)
    options = []
    for p in inspect.signature(factory).parameters.values():
        if p.name in skipped or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = "(required)" if p.default is p.empty else p.default
        options.append(OptionInfo(p.name, _type_name(p.annotation), default))
    return options


def config_options(kind: type, preset: dict[str, Any] | None = None) -> list[OptionInfo]:
    """The fields of a config dataclass with the method's preset overriding defaults."""
    preset = preset or {}
    notes = field_comments(kind)
    options = []
    for f in dataclasses.fields(kind):
        if f.name in preset:
            default = preset[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        note = notes.get(f.name, "")
        if f.name in preset:
            note = "; ".join(filter(None, ["this method's preset", note]))
        options.append(OptionInfo(f.name, _type_name(f.type), default, note))
    return options


def render(
    title: str,
    paper: str,
    options: list[OptionInfo],
    usage: str,
    notes: dict[str, str] | None = None,
    width: int = 100,
) -> str:
    """Plain text (no truncation at any terminal width): title, paper, one row per option."""
    notes = notes or {}
    lines = [title]
    if paper:
        lines += textwrap.wrap(paper, width, initial_indent="  ", subsequent_indent="  ")
    lines += ["", f"options ({usage}):"]
    rows = [(o.name, o.type, repr(o.default), "; ".join(filter(None, [notes.get(o.name), o.note])))
            for o in options]
    if not rows:
        lines.append("  (none)")
        return "\n".join(lines) + "\n"
    w_name = max(len(r[0]) for r in rows)
    w_type = max(len(r[1]) for r in rows)
    w_default = min(24, max(len(r[2]) for r in rows))
    for name, type_, default, note in rows:
        head = f"  {name:<{w_name}}  {type_:<{w_type}}  default {default:<{w_default}}"
        lines.append(f"{head}  {note}".rstrip())
    return "\n".join(lines) + "\n"
