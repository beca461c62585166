"""The run viewer: :func:`load_run` reads a run directory, :func:`render` makes its page."""

from testtime.viewer.html import render
from testtime.viewer.load import RunView, load_run

__all__ = ["RunView", "load_run", "render"]
