"""`testtime scale` (placeholder until implemented)."""

from testtime.cli.main import app  # noqa: F401
