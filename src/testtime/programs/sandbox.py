"""Run an untrusted candidate program in a subprocess that cannot reach the network,
the project's files or the rest of the machine, and score what it returns.

Layers (the OS ones first; ``Sandbox.isolation`` lists those in force here):

* **network**: a fresh network namespace (``unshare --net``, root only): no interface
  but a downed loopback, so no connection of any kind leaves the child;
* **filesystem**: the child runs in a root of its own (a mount namespace): read-only
  binds of ``/usr``, the interpreter and the virtual environment, four devices, the
  program, and the scratch folder, a private tmpfs of ``scratch_mb`` (so no candidate
  fills the disk). Nothing else exists there: not the project, not ``/tmp``, ``/etc``
  or ``/proc``, and the one writable place is the scratch;
* **processes**: PID and IPC namespaces whose end (the group kill) ends every process
  in them, daemons that left the process group included, and frees every System V
  shared-memory segment, semaphore or queue made there;
* **user**: as root the child drops to ``nobody`` (``setpriv``, no new privileges): it
  cannot write root's files and ``RLIMIT_NPROC`` bounds fork bombs;
* **rlimits**: CPU seconds, address space, file size (the output cap: stdout and
  stderr are files), open files, processes; no core dumps;
* **wall clock**: the whole process group is killed past ``wall_s``;
* **scratch**: a fresh folder as the working directory, removed afterwards; the
  environment is cleared and the interpreter runs isolated (``-I``);
* **Python guard** (:mod:`testtime.programs.runner`): audit hooks refuse writes
  outside the scratch folder, reads outside it and the interpreter's libraries,
  sockets, subprocesses and ctypes calls.

Without root the network, filesystem, processes and user layers are absent (recorded
in ``isolation``); the rest hold.
"""

from __future__ import annotations

import json
import os
import shlex
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
DEVICES = ("null", "zero", "random", "urandom")
OS_LAYERS = ("network", "filesystem", "processes", "user")


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


def _system_paths() -> list[str]:
    """What the child's root shows of the machine (read-only): ``/usr`` (and the
    top-level links into it), the interpreter's prefix and the virtual environment."""
    paths = ["/usr", *(p for p in ("/bin", "/lib", "/lib64", "/sbin") if os.path.islink(p))]
    for prefix in (sys.base_prefix, sys.prefix):
        if not any(prefix == p or prefix.startswith(p + os.sep) for p in paths):
            paths.append(prefix)
    return paths


def confine(job: Path, child: list[str], scratch_mb: int) -> list[str]:
    """``child`` (paths as seen inside: the program and runner under ``/job``) run in
    network, mount, PID, IPC and UTS namespaces, in a root built under ``job/root``, as
    nobody."""
    q = shlex.quote
    root = q(str(job / "root"))
    steps = [f"mount -t tmpfs -o mode=0755,size=1024k tmpfs {root}"]
    for path in _system_paths():
        at = q(f"{job / 'root'}{path}")
        if os.path.islink(path):  # /bin -> usr/bin on merged-/usr systems
            steps.append(f"ln -s {q(os.readlink(path))} {at}")
        else:
            steps.append(f"mkdir -p {at} && mount --bind {q(path)} {at} && mount -o remount,bind,ro {at}")
    steps.append(f"mkdir {root}/dev")
    steps += [f"touch {root}/dev/{d} && mount --bind /dev/{d} {root}/dev/{d}" for d in DEVICES]
    steps.append(f"mkdir {root}/job && mount --bind {q(str(job / 'job'))} {root}/job "
                 f"&& mount -o remount,bind,ro {root}/job")
    steps.append(f"mkdir {root}/scratch && mount -t tmpfs -o size={scratch_mb * 1024}k,uid={NOBODY},"
                 f"gid={NOBODY},mode=0700 tmpfs {root}/scratch")
    steps.append(f"mount -o remount,ro {root}")
    # Not exec'd: this shell stays the namespace's first process (the kernel shields that
    # one from default signals: an exec'd child would outlive its CPU limit) and passes on
    # the child's end as 128 + signal (``unshare --fork`` cannot re-raise a signal).
    steps.append(f'unshare --root={root} --wd=/scratch -- "$@"; exit $?')
    return ["unshare", "--net", "--mount", "--pid", "--ipc", "--uts", "--kill-child", "--", "sh", "-c",
            " && ".join(steps), "sh", "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
            "--clear-groups", "--no-new-privs", "--", *child]


@cache
def os_isolation() -> tuple[str, ...]:
    """The OS layers this machine allows (probed once, the whole chain down to the
    interpreter): all need root."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        return ()
    job = Path(tempfile.mkdtemp(prefix="testtime-sandbox-probe-"))
    try:
        (job / "root").mkdir()
        (job / "job").mkdir()
        probe = subprocess.run(confine(job, [sys.executable, "-I", "-c", "import numpy"], 1),
                               capture_output=True)
    finally:
        shutil.rmtree(job, ignore_errors=True)
    return OS_LAYERS if probe.returncode == 0 else ()


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

    def _command(self, job: Path, entry: str, result_fd: int) -> list[str]:
        confined = "filesystem" in self.isolation
        where = Path("/job") if confined else job / "job"
        runner, source = str(where / "runner.py"), str(where / "candidate.py")
        if self.python_guard:
            child = [sys.executable, "-I", runner, source, entry, str(result_fd), self._rlimits()]
        else:  # the same runner with its guard left out: the OS layers only
            code = ("import runpy,sys; sys.argv=sys.argv[1:]; m=runpy.run_path(sys.argv[0],"
                    " run_name='runner_unguarded'); sys.addaudithook=lambda h: None; m['main']()")
            child = [sys.executable, "-I", "-c", code, runner, source, entry, str(result_fd),
                     self._rlimits()]
        return confine(job, child, self.limits.scratch_mb) if confined else child

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
        scratch, program = job / "scratch", job / "job" / "candidate.py"
        scratch.mkdir()
        program.parent.mkdir()
        program.write_text(source, encoding="utf-8")
        shutil.copy(RUNNER, program.parent / "runner.py")
        if "user" in self.isolation:
            (job / "root").mkdir()
            os.chmod(job, 0o711)  # nobody reaches the program and scratch, lists nothing
            for path in program.parent.iterdir():
                path.chmod(0o644)
            os.chown(scratch, NOBODY, NOBODY)
        out_path, err_path, res_path = job / "stdout", job / "stderr", job / "result"
        env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "HOME": "/scratch" if "filesystem" in self.isolation else str(scratch)}
        start = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err, open(res_path, "wb") as res:
            proc = subprocess.Popen(
                self._command(job, entry, res.fileno()),
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
        code = proc.returncode
        if "processes" in self.isolation and code > 128:  # see confine(): a signal's end
            code = 128 - code
        result = RunResult(ok=False, wall_s=wall, returncode=code, pid=proc.pid,
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
