"""Running the app with uvicorn: in the foreground (the CLI) or on a background
thread (tests, benchmarks, notebooks)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

GRACE_S = 5


def _config(app: FastAPI, log_level: str) -> uvicorn.Config:
    # No access log: request lines would be noise at load, and nothing secret is
    # in them anyway (keys travel in headers, which are never logged).
    # On shutdown, requests still running after the grace period are cancelled, which
    # cancels their upstream work (a long strategy run must not hold the exit hostage).
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=GRACE_S,
    )


def use_uvloop() -> bool:
    """Make every event loop the process creates from now on a uvloop loop, when
    uvloop is installed: uvicorn's, and also the private loop the HTTP backend runs
    upstream calls on (which then costs noticeably less CPU per call)."""
    try:
        import uvloop
    except ImportError:  # optional (not on Windows): plain asyncio works the same
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def serve(app: FastAPI, host: str, port: int, *, log_level: str = "info") -> None:
    """Serve until interrupted."""
    use_uvloop()
    config = _config(app, log_level)
    config.host, config.port = host, port
    uvicorn.Server(config).run()


class BackgroundServer:
    """``with BackgroundServer(app) as url:`` serves ``app`` on 127.0.0.1 at a free
    port on a daemon thread; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, app: FastAPI, *, log_level: str = "warning") -> None:
        self._server = uvicorn.Server(_config(app, log_level))
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the background server did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
