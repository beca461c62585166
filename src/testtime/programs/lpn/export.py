"""LPN weights as shipped: ``model.safetensors`` (float32), ``config.json`` (the model's
and the training's settings) and a generated model card ``README.md``; the shipped
copy lives in ``zoo/weights/lpn-grids`` (the package data)."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict
from pathlib import Path

from testtime.programs.lpn.evaluate import EvalConfig, SearchRow
from testtime.programs.lpn.grids import NAMES, held_out, programs
from testtime.programs.lpn.model import LPN, LPNConfig
from testtime.programs.lpn.report import table
from testtime.programs.lpn.train import TrainConfig
from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

NAME = "lpn-grids"
SHIPPED = Path(__file__).resolve().parents[2] / "zoo" / "weights" / NAME


def export(model: LPN, folder: Path, train_cfg: TrainConfig, log: list[dict],
           rows: list[SearchRow], eval_cfg: EvalConfig, threads: int | None) -> None:
    """Write the weights, their settings and the model card into ``folder``; ``threads`` is
    the fallback for logs that do not record the threads each step ran on."""
    from safetensors.torch import save

    threads = training_threads(log) or threads

    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "model.safetensors", save(tensors))
    atomic_write_json(folder / "config.json", {
        "name": NAME, "model": asdict(model.config), "training": asdict(train_cfg),
        "trained_steps": len(log), "training_seconds": log[-1]["seconds"] if log else 0.0,
        "threads": threads})
    atomic_write_text(folder / "README.md", model_card(model, train_cfg, log, rows, eval_cfg, threads))


def training_threads(log: list[dict]) -> int | None:
    """The threads the training ran on (the largest, if resumed on another count); None when
    some logged step does not say (logs written before steps recorded it)."""
    counts = {r.get("threads") for r in log}
    return None if not log or None in counts else max(counts)


def load_lpn(folder: str | Path | None = None) -> LPN:
    """The shipped (or ``folder``'s) LPN in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder) if folder is not None else SHIPPED
    config, weights = folder / "config.json", folder / "model.safetensors"
    if not (config.is_file() and weights.is_file()):
        raise FileNotFoundError(f"no LPN weights in {folder} (train them: testtime learn lpn --out DIR)")
    model = LPN(LPNConfig(**json.loads(config.read_text())["model"]))
    model.load_state_dict(load_file(str(weights)))
    return model.eval()


def model_card(model: LPN, cfg: TrainConfig, log: list[dict], rows: list[SearchRow],
               eval_cfg: EvalConfig, threads: int | None) -> str:
    m = model.config
    params = sum(p.numel() for p in model.parameters())
    pool = programs()
    ood = [p for p in pool if held_out(p)]
    tail = log[-100:]
    recon = statistics.median(r["recon"] for r in tail) if tail else float("nan")
    minutes = (log[-1]["seconds"] / 60) if log else 0.0
    options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in asdict(cfg).items()
                       if k not in ("seed", "checkpoint_every"))
    lines = [
        f"# {NAME}", "",
        "A Latent Program Network (Macfarlane & Bonnet 2024, \"Searching Latent Program Spaces\")",
        "for `testtime`'s procedural grid benchmark: the encoder maps input-output pairs to a",
        "latent program, the decoder maps (input, latent) to the output; at test time the",
        "latent is searched (random, gradient ascent, both) to explain a task's examples.", "",
        f"- Architecture: MLP encoder and decoder (hidden {m.hidden}, latent {m.latent}), "
        f"{params:,} parameters; {m.size}x{m.size} grids of {m.colors} colours, one-hot in, "
        "per-cell colour logits out.",
        f"- Data: programs are compositions of 1-2 of {len(NAMES)} primitives ({', '.join(NAMES)}), "
        f"{len(pool)} in all; {len(ood)} two-step compositions are held out of training "
        f"(out of distribution: {', '.join('+'.join(p) for p in ood)}). Tasks: "
        f"{cfg.examples} example pairs and one query, random grids, checked exactly.",
        f"- Training: {len(log)} steps of {cfg.batch} tasks, Adam lr {cfg.lr:g}, "
        f"{cfg.inner_steps} inner gradient step(s) of size {cfg.inner_lr:g} in the loop, "
        f"KL weight {cfg.beta:g}, seed {cfg.seed}; {minutes:.1f} min on "
        f"{threads or 'default'} thread(s).",
        f"- Final query reconstruction: {recon:.3f} nats per task (median of the last "
        f"{len(tail)} steps; uniform guessing: {m.cells * math.log(m.colors):.3f}).",
        f"- Reproduce: `testtime learn lpn --out runs/lpn --seed {cfg.seed} "
        f"--hidden {m.hidden} --latent {m.latent} {options}`",
        "- Load: `testtime.programs.lpn.export.load_lpn()`",
        "- Limitations: a tiny MLP on 5x5 grids, not the paper's transformer on ARC-AGI; "
        "accuracies below are on this benchmark only.", "",
    ]
    if rows:
        lines += [f"Exact-match accuracy on {eval_cfg.tasks} fresh tasks per split "
                  "(Wilson 95% interval); FLOPs: search decoder passes per task.", "",
                  *table(rows)]
    return "\n".join(lines) + "\n"
