"""A run's result files (results.json, report, plots, per-problem records) appear
as ONE set, or the folder says plainly that the set is incomplete.

:func:`result_set` yields a staging folder inside the output folder; when the
block ends without error the files are moved in: first the previous set's
manifest and ``results.json`` are removed (the folder now reads "incomplete"),
then every file is renamed into place with ``results.json`` last, files of the
previous set that the new one lacks are removed, and ``manifest.json`` (each
file's size and SHA-256) is written last. Ctrl-C during the moves is deferred to
their end. So ``results.json`` never sits next to another run's report or
without its plots, and a kill at any instant leaves either the complete set
(with a manifest) or a folder without ``manifest.json`` that
:func:`read_result_set` refuses with one line (rerunning the command rebuilds
the set from the run store in seconds).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testtime.store.atomic import atomic_write_json

MANIFEST = "manifest.json"
MARKER = "results.json"  # what users (and scripts) take as "the run is done"
STAGE = ".results-staging"  # + "-<pid>-<random>": one per writer
LOCK = ".results.lock"


@contextmanager
def result_set(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Stage a result set: write the files into the yielded folder (subfolders allowed).
    Writers of the same folder in several processes each stage their own set and
    move it in under a lock, so sets never interleave."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_stages(out)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=f"{STAGE}-{os.getpid()}-"))
    try:
        yield stage
        files = sorted(
            (p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file()),
            key=lambda name: (name == MARKER, name),
        )
        if MANIFEST in files:
            raise ValueError(f"{MANIFEST} is the result set's own file; name the output otherwise")
        with _sigint_deferred(), open(out / LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _move_in(out, stage, files)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _remove_stale_stages(out: Path) -> None:
    """Staging folders of writers that are gone (killed mid-staging)."""
    for stage in out.glob(f"{STAGE}-*"):
        try:
            os.kill(int(stage.name[len(STAGE) + 1 :].split("-")[0]), 0)
        except (IndexError, ValueError, ProcessLookupError):
            shutil.rmtree(stage, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def _move_in(out: Path, stage: Path, files: list[str]) -> None:
    previous = _listed(out)
    (out / MANIFEST).unlink(missing_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    manifest: dict[str, Any] = {}
    for name in files:
        manifest[name] = {"bytes": (stage / name).stat().st_size, "sha256": _sha256(stage / name)}
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / name, out / name)
    for name in previous - set(files):
        (out / name).unlink(missing_ok=True)
    _fsync_dir(out)
    atomic_write_json(out / MANIFEST, {"complete": True, "files": manifest})
    _fsync_dir(out)


def read_result_set(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a complete result set; a ValueError (one line) when the set is
    missing, incomplete or a file changed since it was written."""
    out = Path(out_dir)
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(
            f"{out} holds no complete result set (no valid {MANIFEST}): the run was stopped"
            " before it finished; rerun the same command to complete it"
        ) from None
    for name, info in files.items():
        path = out / name
        if not path.is_file() or _sha256(path) != info.get("sha256"):
            raise ValueError(f"{path} is missing or changed since the run wrote its results")
    return manifest


def _listed(out: Path) -> set[str]:
    try:
        files = json.loads((out / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    # Only plain relative names inside the folder: a damaged manifest never deletes elsewhere.
    return {n for n in files if isinstance(n, str) and ".." not in Path(n).parts
            and not Path(n).is_absolute()}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then deliver it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)
