"""``resumable_map``: map a function over item keys, storing each result as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from testtime.store.runstore import RunStore


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
