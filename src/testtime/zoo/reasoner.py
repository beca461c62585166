"""TinyReasoner: a small character-level GPT-2 trained from scratch on the
generated task families, the embedded policy every scaling method runs on.

Training: AdamW with linear warm-up and cosine decay, loss on solution tokens
only (:mod:`testtime.zoo.reasoner_data`). Every ``eval_every`` steps the model
is validated (pass@1 at temperature 1 on ``arith`` level 6, validation seed only)
and a checkpoint is written atomically, so a killed run resumes with
``resume=True``. The shipped checkpoint is chosen on validation: the most
capable one whose pass@1 lies inside ``window`` (so that test-time compute has
room to help), else the one closest to the window's middle.
"""

from __future__ import annotations

import functools
import io
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from testtime.tasks import get_task
from testtime.zoo.prime_card import card as primed_card
from testtime.zoo.reasoner_data import KINDS, MIXTURE, TEST_SEED, VALID_SEED, Example, make_example
from testtime.zoo.reasoner_sampling import sample
from testtime.zoo.tokenizer import build_tokenizer, save_tokenizer

CHECKPOINT = "checkpoint.pt"
TRAINING_INFO = "training.json"
QUALITY_INFO = "quality.json"
LOG_EVERY = 50
SORT_GROUP = 8  # steps whose examples are length-sorted together, to cut padding


@dataclass
class ReasonerConfig:
    n_layer: int = 4
    n_embd: int = 192
    n_head: int = 6
    n_positions: int = 512
    steps: int = 500
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    eval_every: int = 125
    valid_level: int = 6
    valid_problems: int = 64
    valid_samples: int = 4
    window: tuple[float, float] = (0.3, 0.7)


# TinyReasoner-L (issue 12): ~4x the parameters (8.2M), the same recipe; it is the
# larger sibling, so its checkpoint is selected for capability (no pass@1 window).
LARGE = {"n_layer": 8, "n_embd": 288, "n_head": 8, "window": (0.0, 1.0)}


def warmup_cosine(optimizer: torch.optim.Optimizer, config: Any) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to ``min_lr_ratio``; reads ``config.steps`` at each
    step, so a run resumed with another ``--steps`` restretches the cosine."""

    def lr_factor(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        t = (step - config.warmup) / max(1, config.steps - config.warmup)
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


def bf16_supported() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass
class TrainState:
    """A training run's progress, checkpointed with the weights (TinyReasoner, its
    primed and MoE variants share it)."""

    step: int = 0
    wall_s: float = 0.0
    loss_ema: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    selected: dict[str, float] | None = None
    # Runs resumed with another --steps: {"at_step", "from", "to"} (the cosine is restretched).
    schedule_changes: list[dict[str, int]] = field(default_factory=list)


def build_model(config: ReasonerConfig, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    gpt2 = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        # An endless stream of fresh problems: nothing to regularise against.
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(gpt2)


def encode_example(tokenizer: PreTrainedTokenizerBase, example: Example) -> tuple[list[int], list[int]]:
    """(input ids, labels): ``<bos> segments... <eos>``, labels -100 on untrained segments
    (an :class:`Example`'s context, a behaviour trace's prompt, attempts and injected errors)."""
    ids: list[int] = []
    labels: list[int] = []
    for i, (text, trained) in enumerate(example.segments):
        part = tokenizer(text, add_special_tokens=i == 0).input_ids  # the first starts with <bos>
        ids += part
        labels += part if trained else [-100] * len(part)
    return ids + [tokenizer.eos_token_id], labels + [tokenizer.eos_token_id]


def training_batch(
    tokenizer: PreTrainedTokenizerBase, config: ReasonerConfig, seed: int, step: int, make: Any = make_example
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch of ``step``: a deterministic function of (seed, step), so resuming
    replays exactly the data an uninterrupted run would have seen. ``make(seed, index)``
    is the example stream (hashable; default: the from-scratch mixture)."""
    group = step // SORT_GROUP
    rows = _sorted_group(tokenizer, config.batch_size, config.n_positions, seed, group, make)
    order = list(range(SORT_GROUP))
    random.Random(f"batches-{seed}-{group}").shuffle(order)
    size = math.ceil(len(rows) / SORT_GROUP)
    chunk = order[step % SORT_GROUP]
    rows = rows[chunk * size : (chunk + 1) * size]
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in rows])
    return ids, labels, mask


@functools.lru_cache(maxsize=1)
def _sorted_group(
    tokenizer: PreTrainedTokenizerBase, batch_size: int, n_positions: int, seed: int, group: int, make: Any
) -> list[tuple[list[int], list[int]]]:
    """The examples of SORT_GROUP consecutive steps, sorted by length (built once per group)."""
    first = group * SORT_GROUP * batch_size
    rows = [encode_example(tokenizer, make(seed, first + i)) for i in range(SORT_GROUP * batch_size)]
    return sorted((r for r in rows if len(r[0]) <= n_positions), key=lambda r: len(r[0]))


def validate(
    model: GPT2LMHeadModel,
    tokenizer: PreTrainedTokenizerBase,
    config: ReasonerConfig,
    seed: int,
    max_new_tokens: int = 128,
) -> float:
    """pass@1 at temperature 1 on validation problems (never the held-out seed)."""
    task = get_task("arith")
    problems = task.generate(config.valid_problems, config.valid_level, seed=VALID_SEED)
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    prompts = [p.prompt for p in problems]
    # A level-6 reference solution is ~85 characters; 128 tokens bounds runaway samples.
    outs = sample(model, tokenizer, prompts, n=config.valid_samples, generator=generator, max_new_tokens=max_new_tokens)
    model.train()
    correct = sum(task.is_correct(p, s) for p, samples in zip(problems, outs, strict=True) for s in samples)
    return correct / (len(problems) * config.valid_samples)


def _preference(pass1: float, window: tuple[float, float]) -> tuple[int, float]:
    lo, hi = window
    if lo <= pass1 <= hi:
        return (1, pass1)
    return (0, -abs(pass1 - (lo + hi) / 2))


def train_reasoner(
    out: str | Path,
    steps: int | None = None,
    seed: int = 0,
    resume: bool = False,
    config: ReasonerConfig | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Train TinyReasoner into the Hugging Face directory ``out``; returns the training info.
    ``stop_after`` ends this session early after a checkpoint (continue with ``resume``)."""
    out = Path(out)
    config = config or ReasonerConfig()
    if steps is not None:
        config.steps = steps
    if config.steps < 1:
        raise ValueError(f"steps must be >= 1, got {config.steps}")
    ckpt_path = out / "checkpoints" / CHECKPOINT
    torch.set_num_threads(threads)  # the CPU is shared: one thread unless asked
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    model = build_model(config, tokenizer)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay
    )

    scheduler = warmup_cosine(optimizer, config)
    state, selected_weights = TrainState(), None
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        # Only the length may change (the cosine schedule stretches to the new end).
        same = {**ckpt["config"], "steps": config.steps} == asdict(config)
        if not same or ckpt["seed"] != seed or config.steps < ckpt["state"]["step"]:
            raise ValueError(
                f"{ckpt_path} was written with another configuration or seed, or is past"
                f" --steps (steps={ckpt['config']['steps']}, at step {ckpt['state']['step']},"
                f" seed={ckpt['seed']}); drop --resume or match them"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        state, selected_weights = TrainState(**ckpt["state"]), ckpt["selected_weights"]
        if ckpt["config"]["steps"] != config.steps:
            state.schedule_changes.append(
                {"at_step": state.step, "from": ckpt["config"]["steps"], "to": config.steps}
            )
    elif resume:
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")

    model.train()
    started = time.time() - state.wall_s
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress) as bar:
        job = bar.add_task("train reasoner", total=config.steps, completed=state.step, loss="-")
        for step in range(state.step, config.steps):
            ids, labels, mask = training_batch(tokenizer, config, seed, step)
            # bf16 autocast: ~1.5x faster steps on CPUs with bf16 units, ~14x slower on CPUs
            # without (emulated), so only where supported; fp32 master weights.
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_supported()):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            ema = state.loss_ema
            state.loss_ema = loss_ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            bar.update(job, advance=1, loss=f"{loss_ema:.4f}")
            done = step + 1
            if done % LOG_EVERY == 0:  # a plain line too, for logs of background runs
                bar.console.print(f"step {done}: loss {loss_ema:.4f} ({time.time() - started:.0f}s)")
            if done % config.eval_every == 0 or done == config.steps:
                pass1 = validate(model, tokenizer, config, seed)
                record = {"step": done, "loss": round(loss_ema, 5), "valid_pass1": pass1}
                state.history.append(record)
                best = state.selected
                # ">=": among equally good checkpoints the later, more trained one wins.
                if best is None or _preference(pass1, config.window) >= _preference(
                    best["valid_pass1"], config.window
                ):
                    state.selected = record
                    selected_weights = {k: v.clone() for k, v in model.state_dict().items()}
                bar.console.print(f"step {done}: loss {loss_ema:.4f}, valid pass@1 {pass1:.3f}")
            if done % config.eval_every == 0 or done in (config.steps, stop_after):
                state.step, state.wall_s = done, time.time() - started
                _save_checkpoint(ckpt_path, model, optimizer, scheduler, state, selected_weights, config, seed)
            if done == stop_after and done < config.steps:
                return {"steps_trained": done, "complete": False, "history": state.history}

    assert selected_weights is not None
    return _export(model, selected_weights, state, config, seed, out, threads)


def export_checkpoint(out: str | Path, to: str | Path | None = None) -> dict[str, Any]:
    """Write the Hugging Face directory of the checkpoint selected so far by the
    (possibly still running or killed) training run in ``out``, into ``to``."""
    out = Path(out)
    ckpt = torch.load(out / "checkpoints" / CHECKPOINT, weights_only=False)
    config = ReasonerConfig(**{**ckpt["config"], "window": tuple(ckpt["config"]["window"])})
    state = TrainState(**ckpt["state"])
    weights = ckpt["selected_weights"]
    last = state.history[-1] if state.history else None
    if last is not None and last["step"] == state.step and state.selected is not None and _preference(
        last["valid_pass1"], config.window
    ) >= _preference(state.selected["valid_pass1"], config.window):
        state.selected, weights = last, ckpt["model"]  # ties go to the more trained checkpoint
    model = build_model(config, build_tokenizer())
    return _export(model, weights, state, config, ckpt["seed"], Path(to or out), ckpt.get("threads", 1))


def _export(
    model: GPT2LMHeadModel,
    weights: dict[str, torch.Tensor],
    state: TrainState,
    config: ReasonerConfig,
    seed: int,
    out: Path,
    threads: int,
) -> dict[str, Any]:
    assert state.selected is not None
    model.load_state_dict(weights)
    info = {
        "model": "tiny-reasoner",
        "seed": seed,
        "config": asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps_trained": state.step,
        "complete": state.step == config.steps,
        "selected": state.selected,
        "history": state.history,
        "schedule_changes": state.schedule_changes,
        "wall_s": round(state.wall_s, 1),
        "threads": threads,
        "mixture": {
            "families": {k: {"share": w, "difficulties": list(d)} for k, (w, d) in MIXTURE.items()},
            "kinds": KINDS,
        },
    }
    save_model_dir(model, out, info)
    return info


def _save_checkpoint(
    path: Path,
    model: GPT2LMHeadModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainState,
    selected_weights: dict[str, torch.Tensor] | None,
    config: ReasonerConfig,
    seed: int,
) -> None:
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": asdict(state),
            "selected_weights": selected_weights,
            "config": asdict(config),
            "seed": seed,
            "threads": torch.get_num_threads(),
        },
        buffer,
    )
    atomic_write_bytes(path, buffer.getvalue())


def save_model_dir(model: GPT2LMHeadModel, out: Path, info: dict[str, Any]) -> None:
    """The Hugging Face directory: weights, config, tokenizer, training info, model card.
    The card is written last: a directory with a README is complete."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    save_tokenizer(out)
    atomic_write_json(out / TRAINING_INFO, info)
    write_model_card(out)


def write_model_card(out: Path) -> None:
    """README.md from training.json and, once benchmarked, quality.json."""
    info = json.loads((out / TRAINING_INFO).read_text())
    quality_path = out / QUALITY_INFO
    quality = json.loads(quality_path.read_text()) if quality_path.exists() else None
    if "mix" in info:  # a primed model (testtime zoo prime) has its own card
        atomic_write_text(out / "README.md", primed_card(info) + "\n" + "\n".join(quality_lines(quality)) + "\n")
        return
    c = info["config"]
    mix = info["mixture"]
    lines = [
        "# TinyReasoner",
        "",
        "A character-level GPT-2 trained from scratch by `testtime zoo train reasoner` on the",
        "generated task families of `testtime.tasks` (arith, countdown, mul): the embedded",
        "policy the test-time scaling methods run on. Loss on solution tokens only.",
        "",
        "## Model",
        f"- GPT2LMHeadModel: {c['n_layer']} layers, n_embd {c['n_embd']}, {c['n_head']} heads,"
        f" n_positions {c['n_positions']}; {info['parameters']:,} parameters (fp32).",
        "- Tokenizer: one token per character; encoding prepends `<bos>`; generation ends at `<eos>`.",
        "",
        "## Training",
        f"- seed {info['seed']}; {info['steps_trained']} steps of {c['batch_size']} sequences;"
        f" AdamW lr {c['lr']} (warm-up {c['warmup']}, cosine to {c['min_lr_ratio']}x),"
        f" weight decay {c['weight_decay']}; wall time {info['wall_s'] / 60:.1f} min on"
        f" {info['threads']} CPU thread(s)"
        + ("." if info["complete"] else f" (exported mid-run: schedule planned for {c['steps']} steps)."),
        "- Families: "
        + "; ".join(
            f"{k} {v['share']:.0%} (difficulties {v['difficulties'][0]}-{v['difficulties'][-1]})"
            for k, v in mix["families"].items()
        ),
        "- Example kinds: "
        + ", ".join(f"{k} {w:.0%}" for k, w in mix["kinds"].items())
        + " (`wait`: attempt + `wait\\n` -> correct solution; `revise`: attempt + answer +"
        " `revise step j\\n` or `revise\\n` -> correct solution; see `testtime.zoo.reasoner_data`).",
        f"- Problem seeds: training >= 1,000,000; validation seed {VALID_SEED}; held-out test seed {TEST_SEED}.",
        *(
            f"- Resumed at step {ch['at_step']} with `--steps {ch['to']}` (was {ch['from']}):"
            " the cosine schedule restretched to the new end."
            for ch in info.get("schedule_changes", [])
        ),
        *([f"- Note: {info['note']}."] if info.get("note") else []),
        "",
        "## Checkpoint selection (validation seed only)",
        f"Validation pass@1 at T=1 on arith level {c['valid_level']} ({c['valid_problems']} problems x"
        f" {c['valid_samples']} samples); chosen: the most capable checkpoint with pass@1 in"
        f" {c['window']}. Selected step {info['selected']['step']}"
        f" (valid pass@1 {info['selected']['valid_pass1']:.3f}).",
        "",
        "| step | train loss | valid pass@1 |",
        "|---|---|---|",
        *(f"| {h['step']} | {h['loss']:.4f} | {h['valid_pass1']:.3f} |" for h in info["history"]),
        "",
    ]
    atomic_write_text(out / "README.md", "\n".join(lines + quality_lines(quality)) + "\n")


def quality_lines(quality: dict[str, Any] | None) -> list[str]:
    """The card's quality section from quality.json (benchmarks/reasoner_quality.py)."""
    lines = ["## Quality (held-out test seed, temperature 1.0)"]
    if quality is None:
        lines.append("Not measured yet: run `python benchmarks/reasoner_quality.py`.")
    else:
        ks = sorted({k for r in quality["results"] for k in r if k.startswith("pass@")},
                    key=lambda k: int(k[5:]))
        lines += [
            "Unbiased pass@k estimator; see benchmarks/reasoner_quality.py and quality.json.",
            "",
            "| task | level | problems | " + " | ".join(ks) + " | greedy |",
            "|---|---|---|" + "---|" * len(ks) + "---|",
        ]
        for r in quality["results"]:
            cells = " | ".join(f"{r[k]:.3f}" if k in r else "-" for k in ks)
            lines.append(f"| {r['task']} | {r['level']} | {r['problems']} | {cells} | {r['greedy']:.3f} |")
        target = next((r for r in quality["results"] if (r["task"], r["level"]) == ("arith", 6)), None)
        if target is not None:
            top = max((k for k in ks if k in target), key=lambda k: int(k[5:]))
            met = 0.25 <= target["pass@1"] <= 0.75 and (top == "pass@64" and target[top] >= 0.9)
            lines += [
                "",
                f"Target: arith level 6 pass@1 in [0.25, 0.75] and pass@64 >= 0.9 -"
                f" {'met' if met else 'NOT met'} (pass@1 {target['pass@1']:.3f},"
                f" {top} {target[top]:.3f}).",
            ]
    return lines
