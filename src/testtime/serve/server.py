"""Running the app with uvicorn: in the foreground (the CLI) or on a background
thread (tests, benchmarks, notebooks).

The HTTP protocol is uvicorn's httptools one with the app's
:class:`~testtime.serve.limits.Limits` enforced below the app, where uvicorn sets
no bound: a request head must arrive within ``header_timeout_s`` (a connection that
sends nothing, or trickles a partial head, is answered 408 and closed) and stay
under ``max_header_bytes`` (431, read no further); a body must arrive within
``body_timeout_s`` (the app answers 408; the protocol closes a connection whose
body stalls where no app reads it). Beyond ``max_connections`` uvicorn answers 503.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from testtime.serve.limits import Limits

GRACE_S = 5
_BACKSTOP_S = 1.0  # the protocol's body deadline trails the app's own by this much


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines and a size bound on request heads."""

    limits: Limits = Limits()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes, self._in_head, self._deadline = 0, True, None
        self._arm(self.limits.header_timeout_s)

    def _arm(self, seconds: float | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None if seconds is None else self.loop.call_later(seconds, self._expired)

    def _refuse(self, status: int, message: str) -> None:
        body = message.encode()
        self.transport.write(
            STATUS_LINE[status] + b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # waiting for a head
            self._refuse(408, "request head not received in time")
        elif not self.cycle.response_started:  # a body no app reads in time
            self._refuse(408, "request body not received in time")
        else:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            if not self.transport.is_closing():
                self._refuse(431, f"request head exceeds {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        self._arm(self.limits.body_timeout_s + _BACKSTOP_S)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._arm(None)  # the app is working: its own limits apply

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # the next head: after the keep-alive wait
            self._arm(self.limits.keep_alive_s + self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None)
        super().connection_lost(exc)


def _config(app: FastAPI, log_level: str) -> uvicorn.Config:
    # No access log: request lines would be noise at load, and nothing secret is
    # in them anyway (keys travel in headers, which are never logged).
    # On shutdown, requests still running after the grace period are cancelled, which
    # cancels their upstream work (a long strategy run must not hold the exit hostage).
    limits = getattr(app.state, "limits", None) or Limits()
    protocol = type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})
    return uvicorn.Config(
        app,
        http=protocol,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=limits.keep_alive_s,
        timeout_graceful_shutdown=GRACE_S,
        limit_concurrency=limits.max_connections,
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
