"""TinyLMs on multi-query associative recall (:mod:`testtime.layers`): the shipped
``lact-mqar`` (LaCT layers, chunk 64) and its equal-parameter baselines (small-chunk
TTT, full attention), one resumable recipe for ``testtime zoo train lact-mqar`` and
``benchmarks/ttt_layers.py``. Training batch of step s: seed ``TRAIN_SEED0 + s``;
held-out batches use small seeds (the number of pairs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from testtime.layers.lm import LMConfig, TinyLM, matched, num_parameters
from testtime.layers.recall import RecallSpec, recall_accuracy, recall_batch
from testtime.layers.train import TrainConfig, train
from testtime.layers.weights import save_model
from testtime.store.atomic import atomic_write_text

TRAIN_SEED0 = 10**6
MODELS = ("lact", "ttt-small-chunk", "attention")


@dataclass
class RecallRecipe:
    dim: int = 64
    layers: int = 2
    heads: int = 2
    window: int = 16
    optimizer: str = "muon"
    chunk: int = 64  # LaCT's tokens per fast-weight update
    small_chunk: int = 8  # the small-chunk TTT baseline's
    pairs: int = 32
    queries: int = 16
    gap: int = 0
    steps: int = 2000
    batch: int = 32
    lr: float = 3e-3
    checkpoint_every: int = 50

    @property
    def spec(self) -> RecallSpec:
        return RecallSpec(pairs=self.pairs, queries=self.queries, gap=self.gap)


def model_config(name: str, recipe: RecallRecipe) -> LMConfig:
    """``name``'s config: LaCT, or a baseline matched to its parameter count."""
    if name not in MODELS:
        raise ValueError(f"unknown recall model {name!r}; valid: {', '.join(MODELS)}")
    r = recipe
    lact = LMConfig(vocab_size=r.spec.vocab_size, dim=r.dim, layers=r.layers, heads=r.heads,
                    mlp_hidden=2 * r.dim, chunk=r.chunk, window=r.window, optimizer=r.optimizer)
    return {"lact": lact, "ttt-small-chunk": matched(lact, "lact", chunk=r.small_chunk),
            "attention": matched(lact, "attention")}[name]


def train_recall_lm(name: str, recipe: RecallRecipe, out: Path,
                    stop_after: int | None = None) -> tuple[TinyLM, list[dict[str, float]]]:
    """Train (or resume) model ``name`` in ``out``; returns it and the step log."""
    cfg = model_config(name, recipe)
    torch.manual_seed(0)
    model = TinyLM(cfg)
    spec = recipe.spec
    log = train(model, lambda s: recall_batch(spec, recipe.batch, TRAIN_SEED0 + s),
                TrainConfig(steps=recipe.steps, lr=recipe.lr, checkpoint_every=recipe.checkpoint_every),
                out, {"model": cfg.__dict__, "spec": spec.__dict__, "batch": recipe.batch},
                stop_after=stop_after)
    return model, log


def held_out_accuracy(model: TinyLM, recipe: RecallRecipe, pairs: list[int], batch: int) -> dict[str, float]:
    """Recall accuracy by sequence length on held-out seeds (one batch per length)."""
    accs = {}
    with torch.no_grad():
        for n in pairs:
            test = RecallSpec(pairs=n, queries=min(recipe.queries, n), gap=recipe.gap)
            tokens, targets = recall_batch(test, batch, seed=n)
            accs[str(test.length)] = recall_accuracy(model(tokens), targets)
    return accs


def fast_weight_state(model: TinyLM) -> int:
    """Numbers in the fast weights a sequence updates (the layer's test-time state)."""
    return sum(p.numel() for n, p in model.named_parameters() if n.split(".")[-1] in ("w1", "w2", "w3"))


def save_with_card(directory: Path, name: str, model: TinyLM, recipe: RecallRecipe,
                   log: list[dict[str, float]], accs: dict[str, float]) -> Path:
    """The model directory (:func:`testtime.layers.weights.save_model`) with a README.md card."""
    directory = save_model(directory, "tiny-lm", model)
    cfg, spec = model.cfg, recipe.spec
    atomic_write_text(directory / "README.md", (
        f"# TinyLM {name} ({num_parameters(model):,} parameters)\n\n"
        f"testtime.layers.lm.TinyLM, mixer {cfg.mixer} (chunk {cfg.chunk}, window {cfg.window}, "
        f"fast optimiser {cfg.optimizer}), {cfg.layers} layers, dim {cfg.dim}; fast-weight state "
        f"{fast_weight_state(model):,} per sequence. Trained {len(log)} of {recipe.steps} steps (batch "
        f"{recipe.batch}) on MQAR ({spec.pairs} pairs, {spec.queries} queries, gap {spec.gap}; seeds >= "
        f"{TRAIN_SEED0}). For the test-time-memory comparison only.\n\n"
        "Held-out recall accuracy (test seeds; chance 1/64) by sequence length: "
        + ", ".join(f"{length} tokens {acc:.3f}" for length, acc in accs.items()) + ".\n"))
    return directory


def train_lact_mqar(out: Path, steps: int | None, seed: int, resume: bool, threads: int) -> dict[str, Any]:
    """``testtime zoo train lact-mqar``: the LaCT model into ``out/model`` (the shipped
    copy is ``zoo/weights/lact-mqar``)."""
    if seed:
        raise ValueError("lact-mqar has one recipe seed (0); its batches are fixed by the step")
    started = (out / "checkpoint.pt").exists()
    if resume and not started:
        raise FileNotFoundError(f"--resume: no checkpoint at {out / 'checkpoint.pt'}")
    if started and not resume:
        raise FileExistsError(f"{out} holds a run; pass --resume to continue it")
    torch.set_num_threads(threads)
    recipe = RecallRecipe(steps=steps or RecallRecipe.steps)
    model, log = train_recall_lm("lact", recipe, out)
    accs = held_out_accuracy(model, recipe, [8, 16, 32, 64], 128)
    save_with_card(out / "model", "lact", model, recipe, log, accs)
    return {"steps": len(log), "final_loss": log[-1]["loss"], **{f"accuracy_{k}": v for k, v in accs.items()}}
