"""The child side of the sandbox: run one candidate program's entry function under an
audit-hook guard and write its JSON result to an inherited file descriptor.

Started as ``python -I runner.py SOURCE ENTRY RESULT_FD RLIMITS_JSON`` by
:mod:`testtime.programs.sandbox` (never imported by the parent). The guard
(PEP 578 audit hooks) is the Python-level layer on top of the OS limits: files
are written only inside the scratch folder (the working directory), read only
there and in the interpreter's library folders; sockets, new processes, ctypes
foreign calls and the gc's object walks are refused; paths relative to a
``dir_fd`` too (the guard resolves against the working directory). Audit hooks
cannot be removed from Python, but not every call raises one (``os.mkfifo``): the
OS layers (network namespace, a root of its own, unprivileged user, rlimits) are
the boundary and hold when this layer is bypassed.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import sysconfig
import traceback

BLOCKED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn",
                    "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.system", "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function",
                    "ctypes.cdata", "gc.get_", "pty.", "webbrowser.", "urllib.", "http.",
                    "ftplib.", "smtplib.", "imaplib.", "poplib.", "nntplib.", "telnetlib.",
                    "sys.setprofile", "sys.settrace", "os.chroot", "resource.setrlimit",
                    "resource.prlimit", "fcntl.ioctl", "mmap.")
BLOCKED_IMPORTS = frozenset({"_posixsubprocess", "posixshmem", "_multiprocessing"})
WRITE_EVENTS = frozenset({"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink",
                          "os.link", "os.chmod", "os.chown", "os.truncate", "os.utime",
                          "shutil.rmtree", "shutil.move", "shutil.copyfile", "os.chflags"})
READ_EVENTS = frozenset({"os.listdir", "os.scandir", "os.chdir", "glob.glob", "os.walk"})
# Where an event's arguments carry a dir_fd (-1 when absent): a path relative to some
# other folder than the one the guard resolves against, so refused.
DIR_FD_AT = {"os.mkdir": (2,), "os.remove": (1,), "os.rmdir": (1,), "os.rename": (2, 3),
             "os.symlink": (2,), "os.link": (2, 3), "os.chmod": (2,), "os.chown": (3,),
             "os.utime": (3,)}
DEVICES = ("/dev/null", "/dev/urandom", "/dev/random", "/dev/zero")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class SandboxViolation(PermissionError):
    """An operation the sandbox refuses (the candidate is scored as failed)."""


def make_guard(scratch: str, library_roots: tuple[str, ...]):
    """An audit hook confining the candidate; all its state lives in this closure."""
    scratch = os.path.realpath(scratch)
    readable = (scratch, *library_roots)

    def inside(path, roots) -> bool:
        if isinstance(path, int):  # an already-open descriptor
            return True
        real = os.path.realpath(os.fsdecode(path))
        return real in DEVICES or any(real == r or real.startswith(r + os.sep) for r in roots)

    def hook(event: str, args: tuple) -> None:
        if event.startswith(BLOCKED_PREFIXES):
            raise SandboxViolation(f"sandbox: {event} is not allowed")
        if event == "import" and args[0] in BLOCKED_IMPORTS:
            raise ImportError(f"sandbox: importing {args[0]} is not allowed")
        if any(args[i] not in (None, -1) for i in DIR_FD_AT.get(event, ())):
            raise SandboxViolation(f"sandbox: {event} with a dir_fd is not allowed")
        if event == "open":
            path, mode, flags = args
            if mode is None and isinstance(path, (str, bytes)) and not os.path.isabs(path):
                # os.open: its dir_fd is not in the event, so only absolute paths are sure
                raise SandboxViolation(f"sandbox: os.open of a relative path ({path!r}) is not allowed")
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None and flags & WRITE_FLAGS)
            if path is not None and not inside(path, (scratch,) if writing else readable):
                raise SandboxViolation(f"sandbox: {'writing' if writing else 'reading'} {path!r} is not allowed")
        elif event in WRITE_EVENTS:
            paths = list(args)
            if event == "os.symlink" and isinstance(args[0], (str, bytes)):
                # a relative link target is relative to the link's folder, not the cwd
                paths[0] = os.path.join(os.path.dirname(os.fsdecode(args[1])), os.fsdecode(args[0]))
            for path in paths:
                if isinstance(path, (str, bytes, os.PathLike)) and not inside(path, (scratch,)):
                    raise SandboxViolation(f"sandbox: {event} on {path!r} is not allowed")
        elif event in READ_EVENTS:
            path = args[0] if args else "."
            if isinstance(path, (str, bytes, os.PathLike)) and not inside(path, readable):
                raise SandboxViolation(f"sandbox: {event} on {path!r} is not allowed")

    return hook


def plain(value):
    """A JSON-able copy of an entry function's return value (numpy arrays as lists)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def main() -> None:
    source_path, entry, result_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # The OS limits first (set here, not in a preexec hook: the parent has threads).
    for name, value in json.loads(sys.argv[4]).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    result = os.fdopen(result_fd, "w")
    with open(source_path, encoding="utf-8") as f:
        source = f.read()
    # Loaded before the guard because libraries import them (ctypes dlopens at import);
    # its calls stay refused, and subprocess loses its process-spawning module.
    import ctypes  # noqa: F401
    import subprocess

    subprocess._posixsubprocess = None
    sys.modules.pop("_posixsubprocess", None)
    roots = {os.path.realpath(p) for key in ("stdlib", "platstdlib", "purelib", "platlib")
             if (p := sysconfig.get_paths().get(key))}
    sys.addaudithook(make_guard(os.getcwd(), tuple(sorted(roots))))
    try:
        namespace = {"__name__": "candidate"}
        exec(compile(source, "candidate.py", "exec"), namespace)
        fn = namespace.get(entry)
        if not callable(fn):
            raise NameError(f"the program defines no function {entry}()")
        payload = {"ok": True, "value": plain(fn())}
    except BaseException as err:  # noqa: BLE001 - every failure is the candidate's result
        payload = {"ok": False, "error": type(err).__name__, "message": str(err)[:500],
                   "violation": isinstance(err, SandboxViolation) or str(err).startswith("sandbox:"),
                   "traceback": traceback.format_exc(limit=3)[-1500:]}
    try:
        sys.stdout.flush()
    except OSError as err:  # output cap reached (EFBIG)
        payload = {"ok": False, "error": "OSError", "message": str(err), "violation": False}
    try:
        text = json.dumps(payload, allow_nan=True)
    except (TypeError, ValueError) as err:  # a value JSON cannot hold (a set, an object...)
        text = json.dumps({"ok": False, "error": type(err).__name__, "violation": False,
                           "message": f"the returned value is not JSON data: {err}"})
    result.write(text)
    result.flush()


if __name__ == "__main__":
    main()
