"""Start llama.cpp's OpenAI-compatible server (``llama-cpp-python[server]``) on loopback
for a GGUF file, e.g. the export of TinyReasoner (``testtime zoo export --format gguf``).

Used by the real-engine tests and benchmarks; started with the settings testtime's
HTTP backend needs: ``--interrupt_requests false`` (the default cuts a running stream
when the next request arrives), the model's own context (``n_ctx``), and one model
alias. The server process is stopped on exit (its log kept for error messages).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from testtime.backends.base import BackendError


def llama_cpp_available() -> bool:
    """True when llama-cpp-python and its server extra are importable."""
    return all(importlib.util.find_spec(m) for m in ("llama_cpp", "sse_starlette", "uvicorn"))


class LlamaServer:
    """``with LlamaServer(gguf) as url:`` — ``url`` is the OpenAI base URL (``.../v1``)."""

    def __init__(
        self,
        gguf: str | Path,
        *,
        alias: str = "tiny",
        n_ctx: int = 512,
        threads: int = 1,
        start_timeout: float = 60.0,
        interrupt_requests: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if not llama_cpp_available():
            raise BackendError(
                "llama.cpp's server is not installed: pip install 'llama-cpp-python[server]'"
            )
        self.gguf, self.alias, self.n_ctx, self.threads = Path(gguf), alias, n_ctx, threads
        self.start_timeout, self.extra_args = start_timeout, extra_args
        self.interrupt_requests = interrupt_requests  # True: the server's own default
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self._log = tempfile.TemporaryFile()
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf),
            "--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
            "--interrupt_requests", str(self.interrupt_requests).lower(),
            *self.extra_args,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BackendError(f"llama.cpp's server exited ({self.proc.returncode}): {self.log()}")
            try:
                if httpx.get(f"{self.url}/models", timeout=1.0).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise BackendError(f"llama.cpp's server did not start in {self.start_timeout:.0f}s")

    def log(self, tail: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-tail:]

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
