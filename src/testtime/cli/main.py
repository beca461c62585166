"""The ``testtime`` command. Each sub-command lives in its own module and
registers itself on :data:`app`; :func:`main` turns expected failures into one
clear line and a non-zero exit instead of a traceback."""

from __future__ import annotations

import sys

import typer

from testtime.backends.base import BackendError
from testtime.registry import UnknownName

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Spend compute at test time: scale, learn, adapt.",
)

# Sub-command modules register themselves on `app` at import time.
from testtime.cli import adapt as _adapt  # noqa: E402,F401
from testtime.cli import learn as _learn  # noqa: E402,F401
from testtime.cli import run as _run  # noqa: E402,F401
from testtime.cli import scale as _scale  # noqa: E402,F401
from testtime.cli import serve as _serve  # noqa: E402,F401
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
        print("interrupted: no partial results were written", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
