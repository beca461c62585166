"""Run an untrusted candidate program in a subprocess that cannot reach the network,
the project's files or the rest of the machine, and score what it returns.

Layers (the OS ones first; ``Sandbox.isolation`` lists those in force here):

* **network**: a fresh network namespace (``unshare --net``, root only): no interface
  but a downed loopback, so no connection of any kind leaves the child;
* **user**: as root the child drops to ``nobody`` (``setpriv``, no new privileges): it
  cannot write root's files and ``RLIMIT_NPROC`` bounds fork bombs;
* **rlimits**: CPU seconds, address space, file size (the output cap: stdout and
  stderr are files), open files, processes; no core dumps;
* **wall clock**: the whole process group is killed past ``wall_s``;
* **scratch**: a fresh folder as the working directory, removed afterwards; as root
  it is a private tmpfs of ``scratch_mb`` (a mount namespace), so no candidate fills
  the disk; the environment is cleared and the interpreter runs isolated (``-I``);
* **Python guard** (:mod:`testtime.programs.runner`): audit hooks refuse writes
  outside the scratch folder, reads outside it and the interpreter's libraries,
  sockets, subprocesses and ctypes calls.

Without root the network, user and scratch-quota layers are absent (recorded in
``isolation``); the rest hold.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

RUNNER = Path(__file__).with_name("runner.py")
NOBODY = 65534
# Run inside the new mount namespace: a size-capped tmpfs over the scratch folder.
MOUNT_SCRATCH = ('mount -t tmpfs -o "size=$2k,uid=65534,gid=65534,mode=0700" tmpfs "$1" '
                 '&& cd "$1" && shift 2 && exec "$@"')


@dataclass(frozen=True)
class Limits:
    wall_s: float = 30.0
    cpu_s: int = 30
    memory_mb: int = 2048  # address space
    output_kb: int = 1024  # each of stdout, stderr, result, and any scratch file
    processes: int = 16  # threads count too (Linux)
    open_files: int = 64
    scratch_mb: int = 64  # the scratch tmpfs (root only)

    def __post_init__(self) -> None:
        for name in ("wall_s", "cpu_s", "memory_mb", "output_kb", "processes", "open_files",
                     "scratch_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sandbox limit {name} must be > 0, got {getattr(self, name)}")


@dataclass
class RunResult:
    """What one run gave: ``value`` (the entry function's JSON result) when ``ok``,
    else ``reason`` (``"timeout"``, ``"cpu limit"``, ``"memory limit"``, ``"output limit"``,
    ``"blocked: ..."``, ``"crashed: ..."``, ``"no result"``)."""

    ok: bool
    value: Any = None
    reason: str = ""
    wall_s: float = 0.0
    returncode: int | None = None
    pid: int = 0  # also the process group's id (killed when the run ends)
    stdout: str = ""  # the first and last few KB
    stderr: str = ""
    isolation: tuple[str, ...] = field(default_factory=tuple)


@cache
def os_isolation() -> tuple[str, ...]:
    """The OS layers this machine allows (probed once): all three need root."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        return ()
    with tempfile.TemporaryDirectory() as where:  # the whole chain, down to the interpreter
        probe = subprocess.run(["unshare", "--net", "--mount", "--", "sh", "-c", MOUNT_SCRATCH,
                                "sh", where, "64", "setpriv", f"--reuid={NOBODY}",
                                f"--regid={NOBODY}", "--clear-groups", "--no-new-privs", "--",
                                sys.executable, "-I", "-c", "pass"], capture_output=True)
    return ("network", "user", "scratch quota") if probe.returncode == 0 else ()


def _tail(path: Path, keep: int = 2048) -> str:
    data = path.read_bytes()
    if len(data) > 2 * keep:
        data = data[:keep] + b"\n[...]\n" + data[-keep:]
    return data.decode("utf-8", "replace")


class Sandbox:
    """``Sandbox(limits).run(source, entry="run")`` -> :class:`RunResult`."""

    def __init__(self, limits: Limits | None = None, *, python_guard: bool = True) -> None:
        self.limits = limits or Limits()
        self.python_guard = python_guard  # off only to test the OS layers alone
        layers = os_isolation()
        self.isolation = (*layers, "rlimits", "wall clock", "scratch",
                          *(("python guard",) if python_guard else ()))

    def _command(self, source: Path, entry: str, result_fd: int) -> list[str]:
        if self.python_guard:
            child = [sys.executable, "-I", str(RUNNER), str(source), entry, str(result_fd),
                     self._rlimits()]
        else:  # the same runner with its guard left out: the OS layers only
            code = ("import runpy,sys; sys.argv=sys.argv[1:]; m=runpy.run_path(sys.argv[0],"
                    " run_name='runner_unguarded'); sys.addaudithook=lambda h: None; m['main']()")
            child = [sys.executable, "-I", "-c", code, str(RUNNER), str(source), entry,
                     str(result_fd), self._rlimits()]
        if "network" not in self.isolation:
            return child
        return ["unshare", "--net", "--mount", "--", "sh", "-c", MOUNT_SCRATCH, "sh",
                str(source.parent / "scratch"), str(self.limits.scratch_mb * 1024),
                "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                "--no-new-privs", "--", *child]

    def _rlimits(self) -> str:
        lim = self.limits
        return json.dumps({"RLIMIT_CPU": lim.cpu_s, "RLIMIT_AS": lim.memory_mb * 1024 * 1024,
                           "RLIMIT_FSIZE": lim.output_kb * 1024, "RLIMIT_CORE": 0,
                           "RLIMIT_NOFILE": lim.open_files, "RLIMIT_NPROC": lim.processes})

    def run(self, source: str, entry: str = "run") -> RunResult:
        job = Path(tempfile.mkdtemp(prefix="testtime-sandbox-"))
        try:
            return self._run(job, source, entry)
        finally:
            shutil.rmtree(job, ignore_errors=True)

    def _run(self, job: Path, source: str, entry: str) -> RunResult:
        scratch, program = job / "scratch", job / "candidate.py"
        scratch.mkdir()
        program.write_text(source, encoding="utf-8")
        if "user" in self.isolation:
            os.chmod(job, 0o711)  # nobody reaches the program and scratch, lists nothing
            program.chmod(0o644)
            os.chown(scratch, NOBODY, NOBODY)
        out_path, err_path, res_path = job / "stdout", job / "stderr", job / "result"
        env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "HOME": str(scratch)}
        start = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err, open(res_path, "wb") as res:
            proc = subprocess.Popen(
                self._command(program, entry, res.fileno()),
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=scratch, env=env,
                pass_fds=(res.fileno(),), start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=self.limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:  # the whole group: children the candidate left behind too
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        wall = time.monotonic() - start
        result = RunResult(ok=False, wall_s=wall, returncode=proc.returncode, pid=proc.pid,
                           stdout=_tail(out_path), stderr=_tail(err_path), isolation=self.isolation)
        result.reason = self._verdict(result, res_path, timed_out)
        return result

    def _verdict(self, result: RunResult, res_path: Path, timed_out: bool) -> str:
        cap = self.limits.output_kb * 1024
        if timed_out:
            return f"timeout: over {self.limits.wall_s:g} s wall clock"
        code = result.returncode
        if code == -signal.SIGXCPU or (code == -signal.SIGKILL and result.wall_s >= self.limits.cpu_s):
            return f"cpu limit: over {self.limits.cpu_s} s"
        if code == -signal.SIGXFSZ or any(p.stat().st_size >= cap for p in
                                          (res_path.with_name("stdout"), res_path.with_name("stderr"))):
            return f"output limit: over {self.limits.output_kb} KB"
        try:
            payload = json.loads(res_path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            if "MemoryError" in result.stderr:
                return "memory limit"
            return f"no result (exit code {code})" + (f": {result.stderr[-300:].strip()}" if result.stderr else "")
        if not isinstance(payload, dict):
            return "no result: malformed"
        if payload.get("ok"):
            result.ok, result.value = True, payload.get("value")
            return ""
        message = f"{payload.get('error')}: {payload.get('message')}"
        if payload.get("violation"):
            return f"blocked: {message}"
        if payload.get("error") == "MemoryError":
            return f"memory limit: over {self.limits.memory_mb} MB"
        if "File too large" in str(payload.get("message")):
            return f"output limit: over {self.limits.output_kb} KB"
        return f"crashed: {message}"
