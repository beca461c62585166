"""Hostile candidates: each is scored as failed with its reason, nothing escapes."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from testtime.programs.sandbox import OS_LAYERS, Limits, Sandbox, os_isolation

LIMITS = Limits(wall_s=3, cpu_s=2, memory_mb=512, output_kb=256, processes=8)
# Deep in scratch, a descriptor of scratch itself, then "../../x" from it: /tmp/x for the
# kernel, scratch/x for a check that resolves against the working directory.
DIR_FD_ESCAPE = ("import os\ndef run():\n    top = os.getcwd()\n    os.makedirs('a/b')\n"
                 "    os.chdir('a/b')\n    fd = os.open(top, os.O_RDONLY)\n"
                 "    os.close(os.open('../../testtime-escaped', os.O_WRONLY | os.O_CREAT, dir_fd=fd))\n")


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(LIMITS)


def test_a_good_program_returns_its_value(sandbox):
    r = sandbox.run("import numpy as np\ndef run():\n    return {'x': np.arange(3) * 1.5}\n")
    assert r.ok and r.value == {"x": [0.0, 1.5, 3.0]}, r.reason


@pytest.mark.parametrize("source, reason", [
    ("def run():\n    while True: pass\n", ("timeout", "cpu limit")),
    ("def run():\n    return open('/etc/passwd').read()\n", ("blocked",)),
    ("def run():\n    open('/tmp/testtime-escaped', 'w').write('x')\n", ("blocked",)),
    ("import os\ndef run():\n    return os.listdir('/work')\n", ("blocked",)),
    ("import socket\ndef run():\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\n", ("blocked",)),
    ("import subprocess\ndef run():\n    return subprocess.run(['cat', '/etc/passwd']).returncode\n", ("blocked",)),
    ("import os\ndef run():\n    while True: os.fork()\n", ("blocked",)),
    ("import ctypes\ndef run():\n    return ctypes.CDLL(None).getpid()\n", ("blocked",)),
    ("def run():\n    return bytearray(2 * 1024 ** 3)\n", ("memory limit",)),
    ("def run():\n    while True: print('x' * 10000)\n", ("output limit",)),
    ("def run():\n    return 1 / 0\n", ("crashed: ZeroDivisionError",)),
    ("def nothing():\n    pass\n", ("crashed: NameError",)),
    ("def run():\n    return {1, 2}\n", ("crashed: TypeError: the returned value is not JSON",)),
    ("def run(:\n", ("crashed: SyntaxError",)),
    ("import time\ndef run():\n    time.sleep(60)\n", ("timeout",)),  # no CPU spent
    # relative to a folder the guard does not resolve against (here: two up from scratch)
    (DIR_FD_ESCAPE, ("blocked: SandboxViolation: sandbox: os.open of a relative path",)),
    ("import os\ndef run():\n    fd = os.open(os.getcwd(), os.O_RDONLY)\n"
     "    os.mkdir('../../testtime-escaped', dir_fd=fd)\n", ("blocked: SandboxViolation: sandbox: os.mkdir with a dir_fd",)),
    ("import os\ndef run():\n    os.makedirs('a/b')\n"
     "    os.symlink('../../../testtime-escaped', '/'.join([os.getcwd(), 'link']))\n", ("blocked",)),
    ("import os, signal\ndef run():\n    os.kill(os.getppid(), signal.SIGKILL)\n", ("blocked",)),
])
def test_hostile_programs_fail_with_their_reason(sandbox, source, reason):
    r = sandbox.run(source)
    assert not r.ok and r.reason.startswith(reason), r.reason
    assert not Path("/tmp/testtime-escaped").exists()


def test_the_project_files_are_out_of_reach(sandbox):
    here = Path(__file__).resolve()
    r = sandbox.run(f"def run():\n    return open({str(here)!r}).read()\n")
    assert not r.ok and r.reason.startswith("blocked"), r.reason


def test_scratch_is_writable_and_fresh(sandbox):
    src = ("import os\ndef run():\n    open('note.txt', 'w').write('hi')\n"
           "    return sorted(os.listdir('.'))\n")
    first, second = sandbox.run(src), sandbox.run(src)
    assert first.ok and first.value == ["note.txt"], first.reason
    assert second.value == first.value  # nothing carried over from the first run


@pytest.mark.skipif(os_isolation() != OS_LAYERS, reason="needs root (namespaces, nobody)")
def test_os_layers_hold_without_the_python_guard():
    bare = Sandbox(LIMITS, python_guard=False)
    net = bare.run("import socket\ndef run():\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\n")
    assert not net.ok and "unreachable" in net.reason.lower(), net.reason
    here = Path(__file__).resolve()
    read = bare.run(f"def run():\n    return open({str(here)!r}).read()\n")
    assert not read.ok and "No such file" in read.reason, read.reason  # not in its root
    escape = bare.run(DIR_FD_ESCAPE)
    assert not escape.ok and "Read-only file system" in escape.reason, escape.reason
    fifo = bare.run("import os\ndef run():\n    os.mkfifo('/testtime-escaped')\n")  # no audit event
    assert not fifo.ok and "Read-only file system" in fifo.reason, fifo.reason
    listing = bare.run("import os\ndef run():\n    return sorted(os.listdir('/'))\n")
    assert listing.ok and "proc" not in listing.value, listing.value
    # /tmp may exist in its root only as a parent of the bound interpreter or venv (a
    # checkout under /tmp): the host's /tmp itself stays out of sight
    with tempfile.NamedTemporaryFile(dir="/tmp") as marker:
        seen = bare.run(f"import os\ndef run():\n    return os.path.exists({marker.name!r})\n")
    assert seen.ok and seen.value is False, seen
    bomb = bare.run("import os\ndef run():\n    while True: os.fork()\n")
    assert not bomb.ok
    _assert_group_ends(bomb.pid)  # NPROC bounded the bomb, the group kill ended it


@pytest.mark.skipif(os_isolation() != OS_LAYERS, reason="needs root (PID namespace)")
def test_a_daemon_that_leaves_the_group_ends_with_the_run():
    token = f"{time.time() % 1000:.6f}"  # a sleep nobody else runs: finds the daemon
    src = ("import os\ndef run():\n    if os.fork() == 0:\n        os.setsid()\n"
           f"        os.execv('/usr/bin/sleep', ['sleep', '{token}'])\n    return 'left'\n")
    r = Sandbox(LIMITS, python_guard=False).run(src)
    assert r.ok and r.value == "left", r.reason
    deadline = time.monotonic() + 2
    while _running(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(token) == []  # its PID namespace ended with the run


@pytest.mark.skipif(os_isolation() != OS_LAYERS, reason="needs root (IPC namespace)")
def test_shared_memory_made_in_a_run_ends_with_it():
    src = ("import ctypes\ndef run():\n    return ctypes.CDLL(None).shmget(0, 1 << 20, 0o1600)\n")
    before = _segments_of_nobody()
    r = Sandbox(LIMITS, python_guard=False).run(src)
    assert r.ok and r.value >= 0, r.reason  # made (the guard, off here, refuses ctypes)
    assert _segments_of_nobody() == before  # gone with its IPC namespace


def _segments_of_nobody() -> list[str]:
    rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return [row for row in rows if row.split()[7] == "65534"]


def _running(token: str) -> list[int]:
    """Live (not zombie) processes whose command line holds ``token``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if token.encode() in (proc / "cmdline").read_bytes() and \
                    (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _assert_group_ends(pgid: int) -> None:
    deadline = time.monotonic() + 2  # SIGKILLed members turn zombie within moments
    while _live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live_members(pgid) == []


def _live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (dead, waiting for init to reap)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


@pytest.mark.skipif("filesystem" not in os_isolation(), reason="needs root (mount namespace)")
def test_scratch_is_a_quota_not_the_disk(sandbox):
    src = ("def run():\n    for i in range(100):\n"
           "        open(f'f{i}', 'wb').write(b'x' * 200_000)\n")
    r = Sandbox(Limits(wall_s=5, scratch_mb=1)).run(src)
    assert not r.ok and "No space left" in r.reason, r.reason


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="wall_s"):
        Limits(wall_s=0)
