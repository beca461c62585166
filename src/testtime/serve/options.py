"""What a request may set: scalar strategy options by type, and named server resources.

No request option ever reaches the file system. Strategy constructor options are
checked against an allow-list built from their annotations: ``int`` (not a bool),
``float`` (finite), ``bool``, ``None``, and ``str`` only for the enum-like options in
:data:`ENUM_OPTIONS` (short lowercase names the constructor validates). Any other
option (one typed only as an object, a ``str`` the strategy might open) is refused.

Options that name state on disk (:data:`RESOURCE_OPTIONS`: r2-mcts' solution
``bank``, compute-optimal's ``policy``) take the *name* of a resource the operator
declared at start-up (``testtime serve --resource bank=NAME:PATH``); the path is
substituted on the server only when the strategy is built, never echoed, and a
request that passes anything else (a path included) gets a 400.
"""

from __future__ import annotations

import inspect
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testtime.serve.errors import APIError

# String options whose values are names from a fixed set, validated by the strategy.
ENUM_OPTIONS = frozenset({"aggregation", "select", "mode", "binning", "estimate", "unit"})
# Options naming server-side state -> the resource kind a request names instead.
RESOURCE_OPTIONS = {"bank": "bank", "policy": "policy"}
RESOURCE_KINDS = tuple(sorted(set(RESOURCE_OPTIONS.values())))
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_RESOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _kinds(param: inspect.Parameter | None) -> set[str]:
    """The annotation's scalar types a request may send ('int', 'float', 'bool', 'None', 'str');
    an option of a strategy taking ``**kwargs`` (``param`` None) may only be a number."""
    if param is None:
        return {"int", "float", "bool", "None"}
    annotation = param.annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if annotation is inspect.Parameter.empty:
        text = type(param.default).__name__ if param.default is not None else ""
    kinds = {t.strip() for t in str(text).split("|")}
    return kinds & {"int", "float", "bool", "None", "str"}


def check_option(strategy: str, key: str, value: Any, param: inspect.Parameter | None) -> None:
    """Refuse ``value`` for option ``key`` unless it is a scalar the allow-list permits."""
    if key in RESOURCE_OPTIONS and param is not None:
        return  # a resource name, checked by Resources.resolve
    kinds = _kinds(param)
    where = f"testtime.{key}"
    if isinstance(value, bool):
        ok = "bool" in kinds
    elif isinstance(value, int):
        ok = "int" in kinds or "float" in kinds
    elif isinstance(value, float):
        ok = "float" in kinds and math.isfinite(value)
    elif value is None:
        ok = "None" in kinds
    elif isinstance(value, str) and "str" in kinds:
        if key not in ENUM_OPTIONS:
            raise APIError(
                400,
                f"option {key!r} of strategy {strategy!r} cannot be set by a request",
                code="invalid_option",
                param=where,
            )
        ok = _NAME.fullmatch(value) is not None
    else:
        ok = False
    if not ok:
        wanted = " or ".join(sorted(kinds)) or "(none)"
        shown = repr(value) if isinstance(value, int | float | bool) else type(value).__name__
        if isinstance(value, str):
            shown = repr(value[:40])
            if "str" in kinds:
                wanted = "a short lowercase name (a-z, 0-9, '_', '-')"
        raise APIError(
            400,
            f"option {key!r} of strategy {strategy!r} must be {wanted}, got {shown}",
            code="invalid_option",
            param=where,
        )


def parse_resource(spec: str) -> tuple[str, str, Path]:
    """``KIND=NAME:PATH`` (``bank=arith:/srv/banks/arith.json``) -> (kind, name, path)."""
    kind, eq, rest = spec.partition("=")
    name, colon, path = rest.partition(":")
    if not eq or not colon or not path:
        raise ValueError(f"--resource {spec!r}: expected KIND=NAME:PATH, e.g. bank=arith:bank.json")
    if kind not in RESOURCE_KINDS:
        raise ValueError(f"--resource {spec!r}: unknown kind {kind!r}; valid: {', '.join(RESOURCE_KINDS)}")
    if not _RESOURCE_NAME.fullmatch(name):
        raise ValueError(f"--resource {spec!r}: name must be letters, digits, '_', '-', '.' (<= 64)")
    resolved = Path(path).expanduser().resolve()
    if resolved.is_dir() or not resolved.parent.is_dir():
        raise ValueError(f"--resource {spec!r}: {resolved} must be a file in an existing folder")
    return kind, name, resolved


@dataclass
class Resources:
    """Named files the operator lets requests use; one request at a time per file."""

    paths: dict[tuple[str, str], Path] = field(default_factory=dict)
    _locks: dict[Path, threading.Lock] = field(default_factory=dict, repr=False)

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> Resources:
        out = cls()
        for spec in specs:
            kind, name, path = parse_resource(spec)
            if (kind, name) in out.paths:
                raise ValueError(f"--resource: {kind} {name!r} is declared twice")
            out.paths[(kind, name)] = path
            out._locks.setdefault(path, threading.Lock())
        return out

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self.paths if k == kind)

    def resolve(self, options: dict[str, Any]) -> dict[str, str]:
        """The server-side paths for the resource options in ``options`` (400 otherwise)."""
        out = {}
        for key, kind in RESOURCE_OPTIONS.items():
            if key not in options or options[key] is None:
                continue
            value = options[key]
            path = self.paths.get((kind, value)) if isinstance(value, str) else None
            if path is None:
                declared = ", ".join(self.names(kind)) or "none"
                raise APIError(
                    400,
                    f"testtime.{key} must name a {kind} this server was started with "
                    f"(testtime serve --resource {kind}=NAME:PATH; declared: {declared}); "
                    "file paths are never accepted from requests",
                    code="invalid_resource",
                    param=f"testtime.{key}",
                )
            out[key] = str(path)
        return out

    def locks(self, paths: Iterable[str]) -> list[threading.Lock]:
        """The locks of these resource files, in a fixed order (no deadlock)."""
        return [self._locks[Path(p)] for p in sorted(set(paths))]

    def redactions(self) -> dict[str, str]:
        """Path -> ``<kind:name>``: error messages name resources, never server paths."""
        return {str(p): f"<{k}:{n}>" for (k, n), p in self.paths.items()}
