"""Durable, resumable run store: one SQLite database per run directory.

Every finished item of a long run (one problem solved under one strategy and
budget, one adaptation stream, ...) is committed in its own transaction under a
stable item key, so a run killed at any point restarts where it stopped and
recomputes nothing it had stored. Candidate pools are stored next to the
results ("generate once, rescore many"): a new selector can rescore them
without regenerating a single token.

The run's config is fingerprinted when the store is created; opening the same
directory with a different config is an error rather than a silent mix of two
runs' results.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testtime.store.atomic import atomic_write_text

DB_NAME = "runstore.sqlite"
SCHEMA_VERSION = 1


class RunConfigMismatch(ValueError):
    """A run directory already holds a run with another config."""


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) used for hashing."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"value is not JSON-serialisable: {err}") from None


def fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-serialisable object."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:20]


def item_key(*parts: Any) -> str:
    """A stable key for one item, e.g. ``item_key(config_fp, problem.id, "majority", 16)``."""
    return fingerprint(list(parts))


class RunStore:
    """Results of one run, keyed by item key, in ``<run_dir>/runstore.sqlite``.

    ``config`` describes the run (anything JSON-serialisable). It is required
    to create a store; when opening an existing one it is checked against the
    stored config, or may be omitted to read the store as it is.

    Safe to share between threads; several processes may open the same store
    (SQLite WAL), each write is one transaction.
    """

    def __init__(self, run_dir: str | os.PathLike, config: Any = None) -> None:
        self.run_dir = Path(run_dir)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(f"run directory {str(self.run_dir)!r} is a file")
        self.path = self.run_dir / DB_NAME
        new = not self.path.exists()
        if new and config is None:
            raise ValueError(
                f"no run store in {str(self.run_dir)!r}; give the run config to create one"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed item survives power loss, not only a killed process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._init_schema(config)
        except BaseException:
            self._db.close()
            raise

    def _init_schema(self, config: Any) -> None:
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                " pool TEXT, created REAL NOT NULL)"
            )
            stored = dict(db.execute("SELECT name, value FROM meta").fetchall())
            if not stored:
                if config is None:
                    raise ValueError(f"run store {str(self.path)!r} is empty and has no config")
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("config", canonical_json(config)),
                        ("fingerprint", fingerprint(config)),
                    ],
                )
                stored = dict(db.execute("SELECT name, value FROM meta").fetchall())
        if int(stored["schema_version"]) != SCHEMA_VERSION:
            raise ValueError(
                f"run store {str(self.path)!r} has schema version {stored['schema_version']},"
                f" this testtime reads version {SCHEMA_VERSION}"
            )
        self.config = json.loads(stored["config"])
        self.fingerprint = stored["fingerprint"]
        if config is not None and fingerprint(config) != self.fingerprint:
            raise RunConfigMismatch(_mismatch_message(self.run_dir, self.config, config))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            # IMMEDIATE: take the write lock up front so concurrent writers (other
            # processes) queue instead of failing half-way through.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def key(self, *parts: Any) -> str:
        """An item key scoped to this run's config."""
        return item_key(self.fingerprint, *parts)

    def put(self, key: str, value: Any, pool: Sequence[Any] | None = None) -> None:
        """Store (or replace) an item and, optionally, its candidate pool, atomically."""
        value_json = canonical_json(value)
        pool_json = None if pool is None else canonical_json(list(pool))
        with self._transaction() as db:
            db.execute(
                "INSERT INTO items (key, value, pool, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value, pool = excluded.pool,"
                " created = excluded.created",
                (key, value_json, pool_json, time.time()),
            )

    def get(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM items WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def pool(self, key: str) -> list[Any] | None:
        """The candidate pool stored with ``key`` (None when there is none)."""
        rows = self._query("SELECT pool FROM items WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows and rows[0][0] is not None else None

    def __contains__(self, key: str) -> bool:
        return bool(self._query("SELECT 1 FROM items WHERE key = ?", (key,)))

    def __len__(self) -> int:
        return self._query("SELECT COUNT(*) FROM items")[0][0]

    def keys(self) -> list[str]:
        return [k for (k,) in self._query("SELECT key FROM items ORDER BY rowid")]

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(key, value)`` in insertion order."""
        for key, value in self._query("SELECT key, value FROM items ORDER BY rowid"):
            yield key, json.loads(value)

    def pools(self) -> Iterator[tuple[str, list[Any]]]:
        """``(key, pool)`` for every item stored with a pool, to rescore without regenerating."""
        rows = self._query("SELECT key, pool FROM items WHERE pool IS NOT NULL ORDER BY rowid")
        for key, pool in rows:
            yield key, json.loads(pool)

    def export_jsonl(self, path: str | os.PathLike, *, with_pools: bool = False) -> int:
        """Write one ``{"key", "value"[, "pool"]}`` line per item, atomically; returns the count."""
        rows = self._query("SELECT key, value, pool FROM items ORDER BY rowid")
        lines = []
        for key, value, pool in rows:
            record = {"key": key, "value": json.loads(value)}
            if with_pools:
                record["pool"] = None if pool is None else json.loads(pool)
            lines.append(json.dumps(record) + "\n")
        atomic_write_text(path, "".join(lines))
        return len(lines)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mismatch_message(run_dir: Path, stored: Any, given: Any) -> str:
    detail = ""
    if isinstance(stored, dict) and isinstance(given, dict):
        differing = sorted(
            k for k in stored.keys() | given.keys() if stored.get(k, ...) != given.get(k, ...)
        )
        detail = f" (differs in: {', '.join(differing)})"
    return (
        f"run directory {str(run_dir)!r} holds another run's results: its config does not match"
        f" this run's{detail}; use a new directory or the same config"
    )


def resumable_map(
    store: RunStore,
    keys: Sequence[str],
    fn: Callable[[str], Any],
    *,
    pool: Callable[[Any], Sequence[Any]] | None = None,
    workers: int = 1,
) -> list[Any]:
    """``[fn(k) for k in keys]``, skipping keys already in ``store`` and storing
    each result the moment it finishes, so a killed run resumes where it stopped.

    ``fn`` must return a JSON-serialisable value; results come back as stored
    (i.e. JSON round-tripped), in the order of ``keys``. ``pool(value)``, when
    given, extracts the candidate pool stored alongside the value. With
    ``workers > 1`` missing keys are computed on that many threads.
    """
    if len(set(keys)) != len(keys):
        raise ValueError("resumable_map keys must be unique")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")

    def run_one(key: str) -> None:
        value = fn(key)
        store.put(key, value, pool(value) if pool is not None else None)

    missing = [k for k in keys if k not in store]
    if workers == 1:
        for key in missing:
            run_one(key)
    else:
        with ThreadPoolExecutor(workers) as executor:
            futures = [executor.submit(run_one, k) for k in missing]
            try:
                for future in as_completed(futures):
                    future.result()
            except BaseException:
                for future in futures:  # stop what has not started; stored items stay
                    future.cancel()
                raise
    return [store.get(k) for k in keys]
