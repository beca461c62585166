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
- ``results.json``, ``results.md``, ``heatmap.png`` — the aggregate, rewritten after
  each method.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from testtime.adapt import ADAPT_METHODS, get_method
from testtime.adapt.checkpoint import DomainCheckpoint
from testtime.adapt.guard import CollapseGuard
from testtime.cluster import active_session, parallel_map
from testtime.data.corruptions import STANDARD
from testtime.data.streams import SETTINGS, Stream, make_stream
from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from testtime.store.resultset import result_set


@dataclass
class BenchConfig:
    """What to run. ``limit``: images per domain (a seeded subset, the same for every
    method; ``None`` = all). ``source_images``: clean CIFAR-10 *train* images handed to
    methods that take ``source_data`` (EATA's Fisher, CAFA's class statistics, ...)."""

    methods: list[str]
    setting: str = "continual"
    severity: int = 5
    batch_size: int = 200
    limit: int | None = None
    model: str = "resnet-bn"
    seed: int = 0
    guard: bool = False
    guard_options: dict[str, Any] = field(default_factory=dict)
    domains: list[str] = field(default_factory=lambda: list(STANDARD))
    source_images: int = 2000
    imbalance_ratio: float = 500_000.0
    delta: float | None = None
    device: str = "cpu"
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.methods:
            raise ValueError("no methods given")
        for name in self.methods:
            ADAPT_METHODS.get(name)  # UnknownName lists the valid ones
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"a method is listed twice: {', '.join(self.methods)}")
        if self.setting not in SETTINGS:
            raise ValueError(f"unknown setting {self.setting!r}; valid: {', '.join(SETTINGS)}")
        if self.severity not in (1, 2, 3, 4, 5):
            raise ValueError(f"severity must be 1..5, got {self.severity}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.source_images < 0:
            raise ValueError(f"source_images must be >= 0, got {self.source_images}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but CUDA is not available")

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes a method's numbers (the method list does not)."""
        d = asdict(self)
        del d["methods"]
        return d


def result_key(method: str, guard: bool) -> str:
    return f"{method}+guard" if guard else method


# ---------------------------------------------------------------------------------------------
# Data


class _Materialised:
    """The corrupted images a stream will ask for, generated once and shared by all methods."""

    def __init__(
        self, stream: Stream, source: Callable[[str, int, np.ndarray], np.ndarray]
    ) -> None:
        self.images: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        needed: dict[tuple[str, int], set[int]] = {}
        for seg in stream.segments:
            names = (
                seg.sample_domains
                if seg.sample_domains is not None
                else np.full(len(seg.indices), seg.domain, dtype=object)
            )
            for d in dict.fromkeys(names):
                needed.setdefault((str(d), seg.severity), set()).update(
                    seg.indices[names == d].tolist()
                )
        self.plan = {k: np.array(sorted(v), dtype=np.int64) for k, v in needed.items()}
        self._source = source

    def generate(self, on_domain: Callable[[str], None] | None = None) -> None:
        for (domain, severity), idx in self.plan.items():
            self.images[domain, severity] = (idx, self._source(domain, severity, idx))
            if on_domain:
                on_domain(domain)

    def __call__(self, domain: str, severity: int, indices: np.ndarray) -> np.ndarray:
        idx, images = self.images[domain, severity]
        return images[np.searchsorted(idx, indices)]


def default_domain_source(seed: int) -> tuple[Callable, np.ndarray]:
    """CIFAR-10-C from a cached build or generated on the fly (full test set, else the demo subset)."""
    from testtime.data.cifar10c import CIFAR10C

    c10c = CIFAR10C(seed=seed)
    return c10c, c10c.labels


def load_source_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``n`` clean CIFAR-10 train images (seeded subset) as a float [0,1] NCHW tensor pair."""
    if n == 0:
        return None
    from testtime.data.cifar10 import load_cifar10
    from testtime.data.streams import to_tensor

    try:
        images, labels = load_cifar10("train")
    except FileNotFoundError:
        return None  # methods that need it then fail with their own clear message
    idx = np.sort(np.random.default_rng([seed, 7]).permutation(len(images))[:n])
    return to_tensor(images[idx]), torch.from_numpy(labels[idx].astype(np.int64))


# ---------------------------------------------------------------------------------------------
# Measurement


class _PeakMemory:
    """Peak memory of one method run, in MB.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the rise of the process's peak
    resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) above its
    level at the start, i.e. what the method added on top of the data already loaded.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @staticmethod
    def _status(key: str) -> float | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return float(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def __enter__(self) -> _PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        except OSError:
            pass
        self.base = self._status("VmRSS") or 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20 - self.base
            return
        hwm = self._status("VmHWM")
        if hwm is None:  # not Linux: lifetime peak (kB on Linux, bytes on macOS)
            scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        self.peak = max(0.0, hwm - self.base)


def build_method(
    name: str, model: nn.Module, options: dict[str, Any], source_data: Any
) -> nn.Module:
    """``get_method`` with ``source_data`` passed only to methods that declare it."""
    opts = dict(options)
    params = inspect.signature(ADAPT_METHODS.get(name)).parameters
    if "source_data" in params and "source_data" not in opts:
        opts["source_data"] = source_data
    return get_method(name, model, **opts)


def run_method(
    method: nn.Module,
    stream: Stream,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
    checkpoint: DomainCheckpoint | None = None,
) -> dict[str, Any]:
    """Online error of ``method`` on ``stream`` and the cost of the adaptation loop;
    with ``checkpoint``, saved at every new domain and resumed from."""
    errors: dict[str, list[int]] = {d: [0, 0] for d in stream.domains}  # wrong, seen
    batches = images = 0
    loop_s = 0.0
    resumed = checkpoint.load() if checkpoint else None
    if resumed is not None:
        DomainCheckpoint.restore(method, resumed)
        errors, batches, images, loop_s = (resumed[k] for k in ("errors", "batches", "images", "loop_s"))
    skip = batches
    with _PeakMemory(device) as mem:
        for i, batch in enumerate(stream):
            if i < skip:  # seen before the resume
                if progress:
                    progress(len(batch.y))
                continue
            if checkpoint and batch.new_domain and i > skip:
                checkpoint.save(method, {"errors": errors, "batches": batches, "images": images,
                                         "loop_s": loop_s})  # fmt: skip
            if batch.reset:
                method.reset()
            # Streams give NHWC-backed (channels-last strided) tensors; torch 2.13's CPU
            # GroupNorm backward segfaults on such an input at batch size 1.
            x, y = batch.x.to(device).contiguous(), batch.y.to(device)
            t0 = time.perf_counter()
            logits = method(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            loop_s += time.perf_counter() - t0
            wrong = (logits.argmax(1) != y).cpu().numpy()
            who = np.asarray(batch.sample_domains, dtype=object)
            for d in dict.fromkeys(batch.sample_domains):
                m = who == d
                errors[d][0] += int(wrong[m].sum())
                errors[d][1] += int(m.sum())
            batches += 1
            images += len(y)
            if progress:
                progress(len(y))
    per_domain = {d: 100.0 * w / n for d, (w, n) in errors.items() if n}
    return {
        "mean_error": float(np.mean(list(per_domain.values()))),
        "per_domain_error": per_domain,
        "images": images,
        "batches": batches,
        "images_per_s": images / loop_s if loop_s > 0 else math.inf,
        "forwards": method.forwards,
        "backwards": method.backwards,
        "forwards_per_batch": method.forwards / max(batches, 1),
        "backwards_per_batch": method.backwards / max(batches, 1),
        "peak_mem_mb": round(mem.peak, 1),
        "loop_s": round(loop_s, 2),
        **({"resumed_at_batch": skip} if skip else {}),
    }


# ---------------------------------------------------------------------------------------------
# Driver


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
        data = _Materialised(stream, source)
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
    data: _Materialised,
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
            partial = DomainCheckpoint(out / "methods" / f"{result_key(name, config.guard)}.partial.pt")
            res = run_method(method, planned, device, tick, partial)
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
            log(f"{key}: mean error {res['mean_error']:.2f}%  {res['images_per_s']:.0f} img/s  "
                f"{res['forwards_per_batch']:.1f} fwd + {res['backwards_per_batch']:.1f} bwd per batch")  # fmt: skip
            write_reports(out, config)


# ---------------------------------------------------------------------------------------------
# Reports


def collect(out: Path) -> dict[str, dict[str, Any]]:
    """All finished per-method results in ``out/methods``, by key, in finishing order."""
    files = sorted((out / "methods").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return {p.stem: json.loads(p.read_text()) for p in files}


def write_reports(out: Path, config: BenchConfig) -> dict[str, Any]:
    """(Re)write ``results.json``, ``results.md`` and ``heatmap.png`` from the finished
    methods, as one set (see :func:`testtime.store.result_set`)."""
    methods = collect(out)
    results = {"config": config.fingerprint(), "methods": methods}
    if (out / "stream.json").exists():
        results["stream"] = json.loads((out / "stream.json").read_text())
    with result_set(out) as stage:
        atomic_write_json(stage / "results.json", results)
        atomic_write_text(stage / "results.md", markdown_table(results))
        if methods:
            plot_heatmap(results, stage / "heatmap.png")
    return results


def _domains(results: dict[str, Any]) -> list[str]:
    # The configured order (CoTTA's), whatever order a mixed stream first met them in.
    seen = {d for r in results["methods"].values() for d in r["per_domain_error"]}
    return [d for d in results["config"]["domains"] if d in seen]


_SHORT = re.compile(r"_(noise|blur|transform|compression)$")


def markdown_table(results: dict[str, Any]) -> str:
    """One row per method: mean online error, per-domain errors and the cost columns."""
    cfg, methods = results["config"], results["methods"]
    domains = _domains(results)
    limit = "all" if cfg["limit"] is None else cfg["limit"]
    lines = [
        f"# Online error (%) — {cfg['model']}, setting {cfg['setting']}, severity {cfg['severity']}, "
        f"batch {cfg['batch_size']}, images per domain: {limit}, seed {cfg['seed']}"
        + (", collapse guard on" if cfg["guard"] else "")
        + (f", {results['stream']['distinct_classes_per_batch']:.2f} distinct classes per batch"
           if "stream" in results else ""),
        "",
        "| method | mean | "
        + " | ".join(_SHORT.sub("", d) for d in domains)
        + " | img/s | fwd/batch | bwd/batch | peak MB | wall s |",
        "|---|---|" + "---|" * len(domains) + "---|---|---|---|---|",
    ]
    for key, r in methods.items():
        cells = [f"{r['per_domain_error'].get(d, float('nan')):.1f}" for d in domains]
        lines.append(
            f"| {key} | **{r['mean_error']:.2f}** | " + " | ".join(cells)
            + f" | {r['images_per_s']:.0f} | {r['forwards_per_batch']:.2f} | "
            f"{r['backwards_per_batch']:.2f} | {r['peak_mem_mb']:.0f} | {r['wall_s']:.0f} |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def plot_heatmap(results: dict[str, Any], path: Path) -> None:
    """Methods × domains heat map of the online error, with the mean as the last column."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = results["methods"]
    domains = _domains(results)
    keys = list(methods)
    grid = np.array(
        [[methods[k]["per_domain_error"].get(d, np.nan) for d in domains] + [methods[k]["mean_error"]]
         for k in keys]
    )  # fmt: skip
    cols = [_SHORT.sub("", d) for d in domains] + ["MEAN"]
    # Wide enough for the title at any number of columns; tight_layout keeps it unclipped.
    fig, ax = plt.subplots(figsize=(max(6.5, 1.6 + 0.55 * len(cols)), 1.6 + 0.42 * len(keys)))
    im = ax.imshow(
        grid, cmap="viridis_r", vmin=0, vmax=max(50.0, float(np.nanmax(grid))), aspect="auto"
    )
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(keys)), keys, fontsize=8)
    for i in range(len(keys)):
        for j in range(len(cols)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if grid[i, j] > 35 else "black")  # fmt: skip
    cfg = results["config"]
    limit = "all" if cfg["limit"] is None else cfg["limit"]
    ax.set_title(f"CIFAR-10-C online error % — {cfg['model']}, {cfg['setting']}, sev {cfg['severity']}, "
                 f"batch {cfg['batch_size']}, {limit} images/domain", fontsize=9, wrap=True)  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.03).set_label("error %", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
