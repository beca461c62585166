"""RunStore and resumable_map: persistence, config fingerprints, pools, crash-resume."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from testtime.store import (
    RunConfigMismatch,
    RunStore,
    StoreCorruption,
    StoreError,
    item_key,
    resumable_map,
)


def test_put_get_survives_reopen(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run", {"strategy": "majority", "n": 4}) as store:
        key = store.key("p1", "majority", 4)
        store.put(key, {"answer": "7", "correct": True}, pool=[{"text": "a", "answer": "7"}])
        store.put(store.key("p2"), [1, 2])
        assert key in store and store.key("p3") not in store
    with RunStore(
        tmp_path / "run", {"n": 4, "strategy": "majority"}
    ) as store:  # key order irrelevant
        assert len(store) == 2
        assert store.get(key) == {"answer": "7", "correct": True}
        assert store.pool(key) == [{"text": "a", "answer": "7"}]
        assert store.pool(store.key("p2")) is None
        assert store.get("missing", "dflt") == "dflt"
        assert [k for k, _ in store.items()] == [key, store.key("p2")]


def test_put_replaces_instead_of_duplicating(tmp_path: Path) -> None:
    with RunStore(tmp_path, {"a": 1}) as store:
        store.put("k", 1)
        store.put("k", 2)
        assert len(store) == 1 and store.get("k") == 2


def test_other_runs_config_is_a_clear_error(tmp_path: Path) -> None:
    RunStore(tmp_path, {"strategy": "majority", "n": 4}).close()
    with pytest.raises(RunConfigMismatch, match="differs in: n"):
        RunStore(tmp_path, {"strategy": "majority", "n": 8})
    # Opening without a config reads the stored one.
    with RunStore(tmp_path) as store:
        assert store.config == {"strategy": "majority", "n": 4}


def test_creating_without_config_or_unserialisable_values_fail(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give the run config"):
        RunStore(tmp_path / "new")
    with RunStore(tmp_path / "run", {}) as store, pytest.raises(ValueError, match="JSON"):
        store.put("k", {"x": object()})
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        RunStore(tmp_path / "file", {})


def test_item_key_is_stable_and_distinguishes_parts() -> None:
    assert item_key("cfg", "p1", "majority", 16) == item_key("cfg", "p1", "majority", 16)
    assert item_key("cfg", "p1", "majority", 16) != item_key("cfg", "p1", "majority", 8)
    assert item_key("a", "bc") != item_key("ab", "c")


def test_pools_allow_rescoring_without_regenerating(tmp_path: Path) -> None:
    calls = []

    def solve(key: str) -> dict:
        calls.append(key)
        pool = [
            {"answer": "1", "score": 0.9},
            {"answer": "2", "score": 0.2},
            {"answer": "2", "score": 0.3},
        ]
        return {"answer": "2", "candidates": pool}  # majority picked "2"

    with RunStore(tmp_path, {"run": "pools"}) as store:
        resumable_map(store, ["a", "b"], solve, pool=lambda v: v["candidates"])
        # A different selector (best-of-n by score) over the stored pools.
        best = {k: max(p, key=lambda c: c["score"])["answer"] for k, p in store.pools()}
    assert best == {"a": "1", "b": "1"} and calls == ["a", "b"]


def test_resumable_map_skips_stored_and_keeps_order(tmp_path: Path) -> None:
    calls = []

    def fn(key: str) -> int:
        calls.append(key)
        if key == "c" and len(calls) < 4:
            raise RuntimeError("boom")
        return ord(key)

    with RunStore(tmp_path, {"x": 1}) as store:
        with pytest.raises(RuntimeError):
            resumable_map(store, ["a", "b", "c", "d"], fn)
        assert store.keys() == ["a", "b"]
        assert resumable_map(store, ["d", "c", "b", "a"], fn) == [100, 99, 98, 97]
        assert calls == ["a", "b", "c", "d", "c"]
        with pytest.raises(ValueError, match="unique"):
            resumable_map(store, ["a", "a"], fn)


def test_resumable_map_threads_store_each_once(tmp_path: Path) -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def fn(key: str) -> str:
        with lock:
            seen.append(key)
        time.sleep(0.002)
        return key.upper()

    keys = [f"k{i}" for i in range(40)]
    with RunStore(tmp_path, {"x": 1}) as store:
        assert resumable_map(store, keys, fn, workers=4) == [k.upper() for k in keys]
        assert sorted(seen) == sorted(keys) and len(store) == 40


def test_export_jsonl(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run", {"x": 1}) as store:
        store.put("a", {"v": 1}, pool=["p"])
        store.put("b", {"v": 2})
        assert store.export_jsonl(tmp_path / "out.jsonl", with_pools=True) == 2
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines == [
        {"key": "a", "value": {"v": 1}, "pool": ["p"]},
        {"key": "b", "value": {"v": 2}, "pool": None},
    ]


WORKER = """
import hashlib, os, sys, time
from testtime.store import RunStore, resumable_map

run_dir, log_path = sys.argv[1], sys.argv[2]
store = RunStore(run_dir, {"job": "sigkill-test"})
log = open(log_path, "a")

def fn(key):
    log.write(f"{key} {os.getpid()}\\n"); log.flush(); os.fsync(log.fileno())
    time.sleep(0.01)
    return {"pid": os.getpid(), "digest": hashlib.sha256(key.encode()).hexdigest()[:8]}

keys = [f"item-{i}" for i in range(int(sys.argv[3]))]
resumable_map(store, keys, fn)
"""


def test_sigkill_at_random_points_resumes_identically(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run_dir, log = tmp_path / "run", tmp_path / "compute.log"
    n_items, rng, kills = 60, random.Random(0), 0
    for target in sorted(rng.sample(range(3, n_items - 3), 4)) + [None]:
        proc = subprocess.Popen([sys.executable, str(script), str(run_dir), str(log), str(n_items)])
        if target is None:  # the last run is let through
            assert proc.wait(timeout=60) == 0
            break
        # Kill once the run has started `target` items overall, at a random moment
        # inside the item (computing, committing or between items).
        while proc.poll() is None and (
            not log.exists() or len(log.read_text().split()) < 2 * target
        ):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.015))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills == 4

    with RunStore(run_dir) as store:
        stored = dict(store.items())
        assert len(store) == n_items == len(stored)  # no duplicates, nothing missing
        assert store.export_jsonl(tmp_path / "all.jsonl") == n_items
    for i in range(n_items):
        key = f"item-{i}"
        assert stored[key]["digest"] == hashlib.sha256(key.encode()).hexdigest()[:8]
    computed = [line.split() for line in log.read_text().splitlines()]
    for key, value in stored.items():
        pids = [pid for k, pid in computed if k == key]
        # Stored by the last process that computed it: nothing recomputed after storing.
        assert pids[-1] == str(value["pid"])
        assert len(pids) == len(set(pids))
    # Each killed process lost at most the one item it was working on.
    unstored = [(k, pid) for k, pid in computed if str(stored[k]["pid"]) != pid]
    assert len(unstored) <= kills


def test_changed_bytes_are_detected_and_the_item_recomputed(tmp_path: Path) -> None:
    with RunStore(tmp_path, {"x": 1}) as store:
        store.put("k1", {"answer": "12345"}, pool=[{"answer": "12345"}])
        store.put("k2", {"answer": "67890"})
    db = tmp_path / "runstore.sqlite"
    data = db.read_bytes()
    assert data.count(b'"answer":"67890"') == 1 and not (tmp_path / "runstore.sqlite-wal").exists()
    db.write_bytes(data.replace(b'"answer":"67890"', b'"answer":"67899"'))  # SQLite reads it fine
    calls = []
    with RunStore(tmp_path, {"x": 1}) as store, pytest.warns(StoreCorruption, match="k2 fails"):
        assert "k2" not in store and store.get("k2", "gone") == "gone"
        assert store.keys() == ["k1"] and len(store) == 1 and store.corrupted == {"k2"}
        # resumable_map recomputes the damaged item only, and the fresh value is trusted.
        out = resumable_map(store, ["k1", "k2"], lambda k: calls.append(k) or {"answer": "new"})
        assert out == [{"answer": "12345"}, {"answer": "new"}] and calls == ["k2"]
        assert store.corrupted == set() and "k2" in store


def test_a_file_that_is_not_a_run_store_is_one_clear_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "runstore.sqlite").write_bytes(b"this is not SQLite at all" * 100)
    with pytest.raises(StoreError, match=r"runstore.sqlite is not a testtime run store \(file is not"
                       r" a database\); move it away or choose another --out"):
        RunStore(garbage, {"x": 1})
    assert (garbage / "runstore.sqlite").read_bytes().startswith(b"this is not")  # untouched
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    con = sqlite3.connect(foreign / "runstore.sqlite")
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="an SQLite file with tables users"):
        RunStore(foreign, {"x": 1})
    old = tmp_path / "old"
    RunStore(old, {"x": 1}).close()
    con = sqlite3.connect(old / "runstore.sqlite")
    con.execute("UPDATE meta SET value = '1' WHERE name = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"another testtime version \(schema 1; this one reads 2"):
        RunStore(old, {"x": 1})


def test_put_many_is_all_or_nothing(tmp_path: Path) -> None:
    with RunStore(tmp_path, {"x": 1}) as store:
        with pytest.raises(ValueError, match="JSON"):
            store.put_many([("a", 1, None), ("b", {"bad": object()}, None)])
        assert len(store) == 0
        store.put_many([("a", 1, None), ("b", 2, [3])])
        assert store.get("b") == 2 and store.pool("b") == [3] and len(store) == 2


def test_atomic_files_get_the_usual_permissions(tmp_path: Path) -> None:
    import os

    from testtime.store import atomic_write_text

    atomic_write_text(tmp_path / "results.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o666 & ~mask
