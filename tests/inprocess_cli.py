"""Runs ``testtime ARGS`` in the test process (the CLI's own error handling included), on
one torch thread (importable because ``tests/conftest.py`` puts ``tests/`` on the path)."""

from __future__ import annotations

import sys
from unittest import mock

import pytest
import torch


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The exit code, stdout and stderr of ``testtime *args``."""
    from testtime.cli.main import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    code = 0
    try:
        with mock.patch.object(sys, "argv", ["testtime", *args]):
            main()
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr()
    return code, out.out, out.err
