"""Durable, resumable run store: one SQLite database per run directory.

Every finished item of a long run (one problem solved under one strategy and
budget, one adaptation stream, ...) is committed in its own transaction under a
stable item key, so a run killed at any point restarts where it stopped and
recomputes nothing it had stored. Candidate pools are stored next to the
results ("generate once, rescore many"): a new selector can rescore them
without regenerating a single token.

The run's config is fingerprinted when the store is created; opening the same
directory with a different config is an error rather than a silent mix of two
runs' results. Callers key items by everything that determines them (see
:mod:`testtime.store.identity`), and every item carries a checksum of its key
and bytes: an item whose bytes changed on disk is reported (a
:class:`StoreCorruption` warning) and treated as absent, so it is recomputed,
never used. A file that is not a run store, or is damaged, is a
:class:`StoreError` with one line to act on.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testtime.store.atomic import atomic_write_text

DB_NAME = "runstore.sqlite"
SCHEMA_VERSION = 2  # 2: items carry a checksum


class RunConfigMismatch(ValueError):
    """A run directory already holds a run with another config."""


class StoreError(ValueError):
    """The store file is not a testtime run store, or is damaged."""


class StoreCorruption(UserWarning):
    """A stored item failed its checksum; it is treated as absent and recomputed."""


def checksum(key: str, value_json: str, pool_json: str | None) -> str:
    """Hash of an item's key and stored bytes (a changed byte or a moved value fails it)."""
    text = "\0".join((key, value_json, "" if pool_json is None else "\1" + pool_json))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


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

    ``scope`` (JSON-able, optional) is mixed into every :meth:`key` but not checked
    against the stored run: what the items depend on that may change between runs
    (the model's weights hash...), so a change gives new keys (recomputed), not an error.

    Safe to share between threads; several processes may open the same store
    (SQLite WAL), each write is one transaction.
    """

    def __init__(self, run_dir: str | os.PathLike, config: Any = None, *, scope: Any = None) -> None:
        self._scope = () if scope is None else (fingerprint(scope),)
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
        self.corrupted: set[str] = set()  # keys that failed their checksum (warned once)
        try:
            with self._errors():
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: a committed item survives power loss, not only a killed process.
                self._db.execute("PRAGMA synchronous=FULL")
                self._init_schema(config)
        except BaseException:
            self._db.close()
            raise

    def _refuse(self, reason: str) -> StoreError:
        return StoreError(
            f"{self.path} is not a testtime run store ({reason}); move it away or choose"
            " another --out"
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors about the file itself as one actionable line."""
        try:
            yield
        except sqlite3.OperationalError as err:
            if "locked" in str(err):
                raise  # another writer held the lock past the timeout: not the file's fault
            raise StoreError(f"run store {self.path}: {err}") from None
        except sqlite3.DatabaseError as err:
            if type(err) is not sqlite3.DatabaseError:  # misuse (closed store...), not the file
                raise
            if "malformed" in str(err):
                raise StoreError(
                    f"{self.path} is a damaged run store ({err}); move it away or choose"
                    " another --out"
                ) from None
            raise self._refuse(str(err)) from None  # not a database at all

    def _init_schema(self, config: Any) -> None:
        with self._transaction() as db:
            tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "meta" not in tables:
                raise self._refuse(f"an SQLite file with tables {', '.join(sorted(tables))}")
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            stored = dict(db.execute("SELECT name, value FROM meta").fetchall())
            if not stored:
                db.execute(
                    "CREATE TABLE items (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                    " pool TEXT, checksum TEXT NOT NULL, created REAL NOT NULL)"
                )
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
        if stored.get("schema_version") != str(SCHEMA_VERSION):
            raise StoreError(
                f"{self.path} is a run store of another testtime version (schema"
                f" {stored.get('schema_version')}; this one reads {SCHEMA_VERSION}, whose items"
                " carry checksums); move it away or choose another --out"
            )
        try:
            self.config = json.loads(stored["config"])
            if fingerprint(self.config) != stored["fingerprint"]:
                raise ValueError("its config fails its fingerprint")
        except (KeyError, ValueError) as err:
            raise self._refuse(f"damaged run config: {err}") from None
        self.fingerprint = stored["fingerprint"]
        if config is not None and fingerprint(config) != self.fingerprint:
            raise RunConfigMismatch(_mismatch_message(self.run_dir, self.config, config))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            # IMMEDIATE: take the write lock up front so concurrent writers (other
            # processes) queue instead of failing half-way through.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock, self._errors():
            return self._db.execute(sql, args).fetchall()

    def _intact(self, key: str, value: str, pool: str | None, check: str) -> bool:
        """Whether a row passes its checksum; a failing one is warned about once."""
        if checksum(key, value, pool) == check:
            return True
        if key not in self.corrupted:
            self.corrupted.add(key)
            warnings.warn(
                f"{self.path}: stored item {key} fails its checksum (its bytes changed on"
                " disk); it is ignored and recomputed",
                StoreCorruption,
                stacklevel=3,
            )
        return False

    def _rows(self, where: str = "", args: Sequence[Any] = ()) -> list[tuple[str, str, str | None]]:
        """``(key, value, pool)`` of the intact rows matching ``where``, in insertion order."""
        rows = self._query(
            f"SELECT key, value, pool, checksum FROM items {where} ORDER BY rowid", args
        )
        return [(k, v, p) for k, v, p, c in rows if self._intact(k, v, p, c)]

    def key(self, *parts: Any) -> str:
        """An item key scoped to this run's config (and ``scope``)."""
        return item_key(self.fingerprint, *self._scope, *parts)

    def put(self, key: str, value: Any, pool: Sequence[Any] | None = None) -> None:
        """Store (or replace) an item and, optionally, its candidate pool, atomically."""
        self.put_many([(key, value, pool)])

    def put_many(self, items: Sequence[tuple[str, Any, Sequence[Any] | None]]) -> None:
        """Store ``(key, value, pool)`` items in ONE transaction: all of them or none
        (e.g. the problems of one batched call, so a kill never splits a batch)."""
        rows = []
        for key, value, pool in items:
            value_json = canonical_json(value)
            pool_json = None if pool is None else canonical_json(list(pool))
            rows.append((key, value_json, pool_json, checksum(key, value_json, pool_json)))
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO items (key, value, pool, checksum, created) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value, pool = excluded.pool,"
                " checksum = excluded.checksum, created = excluded.created",
                [(*row, now) for row in rows],
            )
        self.corrupted.difference_update(key for key, *_ in rows)

    def get(self, key: str, default: Any = None) -> Any:
        rows = self._rows("WHERE key = ?", (key,))
        return json.loads(rows[0][1]) if rows else default

    def pool(self, key: str) -> list[Any] | None:
        """The candidate pool stored with ``key`` (None when there is none)."""
        rows = self._rows("WHERE key = ?", (key,))
        return json.loads(rows[0][2]) if rows and rows[0][2] is not None else None

    def __contains__(self, key: str) -> bool:
        return bool(self._rows("WHERE key = ?", (key,)))

    def __len__(self) -> int:
        return len(self._rows())

    def keys(self) -> list[str]:
        return [k for k, _, _ in self._rows()]

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(key, value)`` in insertion order."""
        for key, value, _ in self._rows():
            yield key, json.loads(value)

    def pools(self) -> Iterator[tuple[str, list[Any]]]:
        """``(key, pool)`` for every item stored with a pool, to rescore without regenerating."""
        for key, _, pool in self._rows("WHERE pool IS NOT NULL"):
            yield key, json.loads(pool)  # type: ignore[arg-type]

    def export_jsonl(self, path: str | os.PathLike, *, with_pools: bool = False) -> int:
        """Write one ``{"key", "value"[, "pool"]}`` line per item, atomically; returns the count."""
        rows = self._rows()
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
