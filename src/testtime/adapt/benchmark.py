"""The CIFAR-10-C adaptation benchmark: methods × protocol → online error and cost.

``run_benchmark(BenchConfig(...), out_dir)`` runs every method on the same seeded stream
(:func:`testtime.data.streams.make_stream`) and measures the field's metric, the *online*
error: each batch is scored on the logits the method returns for it, before it has seen
the next batch (Wang et al., Tent, ICLR 2021; Wang et al., CoTTA, CVPR 2022). Cost
columns: images/s of the adaptation loop (stream decoding excluded; corruptions are
generated once up front), forward/backward passes per batch from the methods' own
counters, peak memory, wall time.

Layout of ``out_dir`` (resumable: a killed run restarts without recomputing finished
methods; every file is written atomically, so it is complete or absent):

- ``config.json`` — the benchmark configuration (a rerun with another one is refused);
- ``methods/<method>[+guard].json`` — one result per finished method;
- ``methods/<key>.partial.pt`` and ``partial/<key>.json`` — an unfinished method's
  checkpoint (at each domain boundary; every domain's worth of images in ``mixed``) and
  its errors so far; a kill loses at most the domain in flight;
- ``results.json``, ``results.md``, ``heatmap.png`` — the aggregate, rewritten after
  each method.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from testtime.adapt import ADAPT_METHODS
from testtime.adapt.bench_config import BenchConfig, result_key
from testtime.adapt.bench_data import Materialised, default_domain_source, load_source_data
from testtime.adapt.bench_loop import build_method, run_method
from testtime.adapt.bench_report import collect, markdown_table, plot_heatmap, write_reports
from testtime.adapt.checkpoint import DomainCheckpoint
from testtime.adapt.guard import CollapseGuard
from testtime.cluster import active_session, parallel_map
from testtime.data.streams import Stream, make_stream
from testtime.store.atomic import atomic_write_json

__all__ = [
    "BenchConfig", "build_method", "collect", "default_domain_source", "load_source_data",
    "markdown_table", "plot_heatmap", "result_key", "run_benchmark", "run_method", "write_reports",
]  # fmt: skip


def run_benchmark(
    config: BenchConfig,
    out_dir: str | os.PathLike,
    *,
    model_factory: Callable[[], nn.Module] | None = None,
    domain_source: tuple[Callable, np.ndarray] | None = None,
    source_data: Any = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``config`` into ``out_dir`` and return the aggregate results.

    ``model_factory`` (default: :func:`testtime.zoo.load_cifar_model` of ``config.model``)
    builds a fresh source model per method; ``domain_source`` = (``source(domain,
    severity, indices) -> uint8 images``, labels) replaces CIFAR-10-C; ``source_data``
    replaces the clean train images.
    """
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    fp = config.fingerprint()
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != json.loads(json.dumps(fp)):
            diff = sorted(
                k for k in set(old) | set(fp) if old.get(k) != json.loads(json.dumps(fp)).get(k)
            )
            raise ValueError(f"{out} holds results of another configuration (differs in: "
                             f"{', '.join(diff)}); use a new --out")  # fmt: skip
    else:
        atomic_write_json(cfg_path, fp)

    device = torch.device(config.device)
    if model_factory is None:
        from testtime.zoo.cifar import load_cifar_model

        def model_factory() -> nn.Module:
            return load_cifar_model(config.model)

    todo = [
        m
        for m in config.methods
        if not (out / "methods" / f"{result_key(m, config.guard)}.json").exists()
    ]
    for m in config.methods:
        if m not in todo:
            log(f"{result_key(m, config.guard)}: done earlier, kept")
    if todo:
        source, labels = domain_source or default_domain_source(config.seed)
        stream = make_stream(
            config.setting, source, labels, config.batch_size, config.seed,
            domains=config.domains, severity=config.severity, limit=config.limit,
            delta=config.delta, imbalance_ratio=config.imbalance_ratio,
        )  # fmt: skip
        # How class-correlated the planned stream is (labels only; written with the config).
        atomic_write_json(out / "stream.json", stream.class_statistics())
        data = Materialised(stream, source)
        if source_data is None and any(
            "source_data" in inspect.signature(ADAPT_METHODS.get(m)).parameters for m in todo
        ):
            source_data = load_source_data(config.source_images, config.seed)
        _run_all(config, todo, stream, data, model_factory, source_data, device, out, progress, log)
    return write_reports(out, config)


def _run_all(
    config: BenchConfig,
    todo: Sequence[str],
    stream: Stream,
    data: Materialised,
    model_factory: Callable[[], nn.Module],
    source_data: Any,
    device: torch.device,
    out: Path,
    progress: bool,
    log: Callable[[str], None],
) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from testtime.progress import make_progress

    planned = Stream(stream.setting, stream.segments, stream.labels, data, stream.batch_size,
                     stream.reset_each_shift)  # fmt: skip
    with make_progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress,
    ) as bar:  # fmt: skip
        gen = bar.add_task("corrupting", total=len(data.plan))
        data.generate(lambda d: bar.advance(gen))
        bar.remove_task(gen)
        # Inside a Ray session each method runs as one Ray task (no live bar there: the
        # bar stays on the driver); the driver writes each result as it arrives.
        live = None if active_session() else bar

        def one(name: str) -> dict[str, Any]:
            task = None if live is None else live.add_task(f"{result_key(name, config.guard):>14}", total=stream.n_images)
            t0 = time.perf_counter()
            torch.manual_seed(config.seed)  # methods with randomness (CoTTA's views) repeat
            method = build_method(
                name, model_factory().to(device), config.method_options.get(name, {}), source_data
            )
            if config.guard:
                method = CollapseGuard(method, **config.guard_options)
            setup_s = time.perf_counter() - t0
            tick = (lambda _n: None) if live is None else (lambda n: live.advance(task, n))
            key = result_key(name, config.guard)

            def saved(summary: dict[str, Any]) -> None:
                # Readable progress of the unfinished method (reported as a partial row).
                atomic_write_json(out / "partial" / f"{key}.json", summary)
                done = ", ".join(f"{d} {e:.1f}" for d, e in summary["per_domain_error"].items())
                log(f"{key}: {summary['images']}/{summary['total_images']} images, "
                    f"{summary['images_per_s']:.1f} img/s; online error so far: {done}")  # fmt: skip

            partial = DomainCheckpoint(out / "methods" / f"{key}.partial.pt")
            res = run_method(method, planned, device, tick, partial, on_save=saved)
            res.update(method=name, guard=config.guard, setup_s=round(setup_s, 2),
                       wall_s=round(time.perf_counter() - t0, 2))  # fmt: skip
            if isinstance(method, CollapseGuard):
                res.update(rollbacks=method.rollbacks, resets=method.resets,
                           guard_events=[list(e) for e in method.events])  # fmt: skip
            if live is not None:
                live.remove_task(task)
            return res

        for _, res in parallel_map(one, todo):
            key = result_key(res["method"], config.guard)
            atomic_write_json(out / "methods" / f"{key}.json", res)
            DomainCheckpoint(out / "methods" / f"{key}.partial.pt").clear()
            (out / "partial" / f"{key}.json").unlink(missing_ok=True)
            log(f"{key}: mean error {res['mean_error']:.2f}%  {res['images_per_s']:.0f} img/s  "
                f"{res['forwards_per_batch']:.1f} fwd + {res['backwards_per_batch']:.1f} bwd per batch")  # fmt: skip
            write_reports(out, config)
