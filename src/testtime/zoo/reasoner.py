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

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from testtime.store.atomic import atomic_write_bytes, atomic_write_json
from testtime.tasks import get_task
from testtime.zoo.batches import training_batch
from testtime.zoo.reasoner_card import TRAINING_INFO, write_model_card
from testtime.zoo.reasoner_data import KINDS, MIXTURE, VALID_SEED
from testtime.zoo.reasoner_sampling import sample
from testtime.zoo.tokenizer import build_tokenizer, save_tokenizer
from testtime.zoo.training import (
    LOG_EVERY,
    TrainConfig,
    TrainState,
    bf16_supported,
    checkpoint_path,
    note_threads,
    preference,
    restore,
    warmup_cosine,
)

CHECKPOINT = "checkpoint.pt"


@dataclass
class ReasonerConfig(TrainConfig):
    """TinyReasoner's architecture and validation level on top of the shared fields."""

    n_layer: int = 4
    n_embd: int = 192
    n_head: int = 6
    valid_level: int = 6


# TinyReasoner-L (issue 12): ~4x the parameters (8.2M), the same recipe; it is the
# larger sibling, so its checkpoint is selected for capability (no pass@1 window).
LARGE = {"n_layer": 8, "n_embd": 288, "n_head": 8, "window": (0.0, 1.0)}


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
    ckpt_path = checkpoint_path(config, out, f"checkpoints/{CHECKPOINT}", resume)
    torch.set_num_threads(threads)  # the CPU is shared: one thread unless asked
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    model = build_model(config, tokenizer)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay
    )

    scheduler = warmup_cosine(optimizer, config)
    state, selected_weights = TrainState(), None
    if resume:
        ckpt = torch.load(ckpt_path, weights_only=False)
        # Only the length may change (the cosine schedule stretches to the new end).
        same = {**ckpt["config"], "steps": config.steps} == asdict(config)
        if not same or ckpt["seed"] != seed or config.steps < ckpt["state"]["step"]:
            raise ValueError(
                f"{ckpt_path} was written with another configuration or seed, or is past"
                f" --steps (steps={ckpt['config']['steps']}, at step {ckpt['state']['step']},"
                f" seed={ckpt['seed']}); drop --resume or match them"
            )
        state, selected_weights = restore(ckpt, model, optimizer, scheduler, ckpt["config"]["steps"], config.steps)
    note_threads(state, threads)

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
                if best is None or preference(pass1, config.window) >= preference(
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
    if last is not None and last["step"] == state.step and state.selected is not None and preference(
        last["valid_pass1"], config.window
    ) >= preference(state.selected["valid_pass1"], config.window):
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
        "thread_segments": state.threads,
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


