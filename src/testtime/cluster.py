"""Scale-out on Ray: independent work items as Ray tasks, results stored by the driver.

A run's work items (problems x strategies x budgets, adaptation methods, per-instance
learn problems) are independent, so they map onto Ray tasks (Moritz et al., 2018,
"Ray: A Distributed Framework for Emerging AI Applications"). Only the driver talks
to the :class:`~testtime.store.RunStore`: each result is committed the moment it
arrives, so a killed Ray run resumes exactly like an in-process one. Every item
carries its own seed (the harnesses derive it from the item, not from the worker),
so a Ray run returns the same results as the in-process run.

Harnesses call :func:`parallel_map` / :func:`resumable_map`; they run in-process
unless a :func:`ray_session` is active (the CLIs' ``--ray [ADDRESS]``).
Ray is an optional extra (``pip install testtime[ray]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from testtime.store import RunStore
from testtime.store import resumable_map as _local_resumable_map

T = TypeVar("T")
R = TypeVar("R")

LOCAL = "local"  # --ray value for a fresh local cluster on this machine


@dataclass(frozen=True)
class RaySession:
    """An initialised Ray connection: ``max_in_flight`` tasks at once, each allowed
    ``upstream_share`` concurrent requests to an upstream server (None: no limit set)."""

    address: str | None
    max_in_flight: int
    upstream_share: int | None


_active: RaySession | None = None


def worker_share(total: int, workers: int) -> int:
    """Each of ``workers`` concurrent tasks' share of ``total`` upstream requests, so
    together they never exceed ``total`` (at least 1 each: a task must make progress)."""
    if total < 1 or workers < 1:
        raise ValueError(f"concurrency and workers must be >= 1, got {total} and {workers}")
    if workers > total:
        raise ValueError(
            f"{workers} Ray tasks in flight would each need a request slot, but the upstream"
            f" limit is {total}; lower --ray-tasks or raise --ray-concurrency"
        )
    return total // workers


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray: pip install 'testtime[ray]'") from None
    return ray


@contextmanager
def ray_session(
    address: str | None = None,
    *,
    num_cpus: int = 2,
    max_in_flight: int | None = None,
    upstream_concurrency: int | None = None,
) -> Iterator[RaySession]:
    """Connect to the Ray cluster at ``address`` (None or ``"local"``: start a local one
    with ``num_cpus``) for the duration of the block; harness maps inside it run on Ray.

    ``max_in_flight`` caps concurrently running tasks (default: the cluster's CPUs);
    ``upstream_concurrency`` is the total request limit towards a generation server
    (vLLM/SGLang behind the OpenAI backend), split evenly over the tasks in flight.
    """
    global _active
    if _active is not None:
        raise ValueError("a Ray session is already active")
    ray = _import_ray()
    addr = None if address in (None, "", LOCAL) else address
    started = not ray.is_initialized()
    if started:
        if addr is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            try:
                ray.init(address=addr, log_to_driver=False)
            except ConnectionError as err:
                raise ValueError(f"cannot reach the Ray cluster at {addr!r}: {err}") from None
    try:
        tasks = max_in_flight or max(1, int(ray.cluster_resources().get("CPU", 1)))
        if tasks < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {tasks}")
        share = None if upstream_concurrency is None else worker_share(upstream_concurrency, tasks)
        _active = RaySession(addr, tasks, share)
        yield _active
    finally:
        _active = None
        if started:
            ray.shutdown()


def active_session() -> RaySession | None:
    return _active


def limit_upstream(generator: T) -> T:
    """Give ``generator`` the session's per-task share of upstream concurrency (for
    backends with ``max_concurrency``, e.g. the OpenAI backend); other generators and
    in-process runs are returned unchanged."""
    if (
        _active is not None
        and _active.upstream_share is not None
        and hasattr(generator, "max_concurrency")
    ):
        generator.max_concurrency = min(generator.max_concurrency, _active.upstream_share)  # type: ignore[attr-defined]
    return generator


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    # Torch in a Ray worker: one thread per task, the cluster's CPUs are the parallelism.
    import torch

    torch.set_num_threads(1)
    return fn(item)


def parallel_map(fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
    """``(index, fn(item))`` for every item, as each finishes: in order in-process,
    or in finishing order as Ray tasks when a :func:`ray_session` is active.

    ``fn`` (and what it closes over: model, task, verifier) is shipped to the cluster
    once; it must not touch driver-only state (stores, progress bars).
    """
    if _active is None:
        for i, item in enumerate(items):
            yield i, fn(item)
        return
    ray = _import_ray()
    remote = ray.remote(num_cpus=1, max_retries=0)(_call)
    fn_ref = ray.put(fn)
    pending: dict[Any, int] = {}
    todo = iter(enumerate(items))
    try:
        while True:
            while len(pending) < _active.max_in_flight:
                nxt = next(todo, None)
                if nxt is None:
                    break
                pending[remote.remote(fn_ref, nxt[1])] = nxt[0]
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
    finally:
        for ref in pending:  # stop what is still running; stored items stay
            ray.cancel(ref, force=True)


def resumable_map(
    store: RunStore,
    keys: Sequence[str],
    fn: Callable[[str], Any],
    *,
    pool: Callable[[Any], Sequence[Any]] | None = None,
    on_done: Callable[[str], None] | None = None,
) -> list[Any]:
    """:func:`testtime.store.resumable_map` that runs on Ray inside a :func:`ray_session`.

    Keys already in ``store`` are skipped; each result is stored by the driver as it
    arrives; ``on_done(key)`` runs on the driver after each stored item (progress).
    """
    if _active is None:

        def local(key: str) -> Any:
            value = fn(key)
            if on_done is not None:
                on_done(key)
            return value

        # on_done runs before the put here: both are on the driver and the item is stored
        # right after, so progress never runs ahead of a crash by more than one item.
        return _local_resumable_map(store, keys, local, pool=pool)
    if len(set(keys)) != len(keys):
        raise ValueError("resumable_map keys must be unique")
    missing = [k for k in keys if k not in store]
    for i, value in parallel_map(fn, missing):
        store.put(missing[i], value, pool(value) if pool is not None else None)
        if on_done is not None:
            on_done(missing[i])
    return [store.get(k) for k in keys]


def optional_session(
    address: str | None, *, tasks: int | None = None, upstream_concurrency: int | None = None
) -> AbstractContextManager[RaySession | None]:
    """The CLIs' ``--ray ADDRESS`` / ``--ray-tasks`` / ``--ray-concurrency``: a
    :func:`ray_session` when an address (or ``"local"``) is given, else in-process."""
    if address is None:
        if tasks is not None or upstream_concurrency is not None:
            raise ValueError("--ray-tasks and --ray-concurrency need --ray (e.g. --ray local)")
        return nullcontext()
    return ray_session(address, max_in_flight=tasks, upstream_concurrency=upstream_concurrency)


RAY_HELP = "run work items as Ray tasks: 'local' starts a 2-CPU cluster here, else a cluster address"
RAY_TASKS_HELP = "Ray tasks in flight at once (default: the cluster's CPUs)"
RAY_CONCURRENCY_HELP = "total concurrent requests to the generation server, split over the Ray tasks"
