"""Server fixture for the serve tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from testtime.backends.base import Generator
from testtime.serve.app import create_app
from testtime.serve.server import BackgroundServer

from .scripted import API_KEY


@pytest.fixture
def make_server() -> Iterator[Callable[..., str]]:
    """``make_server(generator, **create_app_options) -> base_url`` (torn down after the test)."""
    servers: list[BackgroundServer] = []

    def start(generator: Generator, **options) -> str:
        options.setdefault("api_keys", [API_KEY])
        server = BackgroundServer(create_app(generator, model_name="tiny", **options))
        servers.append(server)
        return server.__enter__()

    yield start
    for server in servers:
        server.__exit__(None, None, None)
