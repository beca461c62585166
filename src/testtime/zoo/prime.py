"""``testtime zoo prime``: fine-tune a causal LM on a mix of cognitive-behaviour traces
(:mod:`testtime.zoo.behaviours`), the priming step of Gandhi et al. (2025): the
embedded TinyReasoner fully, or a user's Hugging Face causal LM with LoRA (peft).
``scratch`` / ``scratch-l`` start from an untrained TinyReasoner / TinyReasoner-L
instead, so the behaviours are in the data from step 0 (TinyReasoner 2's recipe:
fine-tuning v1 never learned the new contracts, benchmarks/results/testbed_shapes.md).

The loop is TinyReasoner's (:mod:`testtime.zoo.reasoner`): AdamW, warm-up + cosine,
deterministic batches per (seed, step), and an atomic checkpoint every ``eval_every``
steps; validation is per behaviour (:mod:`testtime.zoo.prime_valid`: plain solving at
arith levels 6 and 10, checking after ``wait``, in-context examples; validation seed
only) and selects the checkpoint that keeps plain pass@1 in a window and is best on
average, so a killed run resumes with
``resume=True``. The source model is only read; the output directory may never be
a shipped model's. Deviation: a LoRA run exports the merged model (plain HF format).
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from testtime.store.atomic import atomic_write_bytes, atomic_write_json
from testtime.zoo import WEIGHTS_DIR, reasoner_path
from testtime.zoo.batches import training_batch
from testtime.zoo.behaviours import check_mix, sample_trace, step_task
from testtime.zoo.prime_valid import VALID, preference, validate_behaviours
from testtime.zoo.reasoner import LARGE, ReasonerConfig, build_model
from testtime.zoo.reasoner_card import write_model_card
from testtime.zoo.reasoner_data import TRAIN_SEED_BASE
from testtime.zoo.tokenizer import build_tokenizer
from testtime.zoo.training import (
    LOG_EVERY,
    TrainConfig,
    TrainState,
    checkpoint_path,
    note_threads,
    restore,
    warmup_cosine,
)

CHECKPOINT = "checkpoints/prime.pt"
# The mix TinyReasoner 2 is primed on: the sequential strategies' contracts (wait, revise,
# in-context examples) with plain solutions as the largest share, the default mode kept
# plain. Verification/backtracking/subgoal/backward traces in the default mode broke plain
# solving (valid pass@1 0.695 -> 0.16-0.23 at steps 125-250, benchmarks/results/testbed_shapes.md);
# they are for priming experiments (--behaviours).
DEFAULT_MIX = {"plain": 0.5, "wait": 0.2, "revise": 0.1, "incontext": 0.2}
FAMILIES = {"arith": (0.8, tuple(range(1, 13))), "countdown": (0.1, (2, 3, 4, 5, 6)), "mul": (0.1, (1, 2, 3, 4, 5))}
PRIME_SEED_OFFSET = 10**9  # problem seeds disjoint from the from-scratch stream, validation and test


@dataclass(frozen=True)
class TraceStream:
    """``(seed, index) -> Trace``, hashable so batches can be cached per group."""

    mix: tuple[tuple[str, float], ...]
    families: tuple[tuple[str, tuple[float, tuple[int, ...]]], ...]

    def __call__(self, seed: int, index: int):
        return sample_trace(dict(self.mix), dict(self.families), seed, index, _problem_seed)


def _problem_seed(seed: int, index: int) -> int:
    return TRAIN_SEED_BASE + PRIME_SEED_OFFSET + seed * 10**7 + index


@dataclass
class PrimeConfig(TrainConfig):
    """Priming's defaults on the shared fields, its validation and the LoRA/bf16 switches."""

    steps: int = 1600  # TinyReasoner 2: ~2.2 s/step on 2 threads (measured 3.5 at 1, loaded box)
    lr: float = 2e-4  # v1 ended at 3e-4; 5e-4 lost L10 pass@1 0.36 -> 0.16 in 240 steps
    eval_every: int = 160
    valid: tuple[tuple[str, int], ...] = VALID
    valid_problems: int = 48  # x 2 samples x 4 entries: ~55 s per validation on 2 threads
    valid_samples: int = 2
    valid_tokens: int = 256  # behaviour traces are longer than plain solutions
    window: tuple[float, float] = (0.25, 0.75)  # plain pass@1 (valid[0]): the band
    lora: bool = False
    lora_rank: int = 8
    bf16: bool = False  # autocast: faster only on CPUs with bf16 units (~14x slower without)


def parse_mix(text: str | None) -> dict[str, float]:
    """``"verify=0.3,backtrack=0.7"`` or ``"verify,backtrack"`` (equal weights); None: the default."""
    if not text:
        return dict(DEFAULT_MIX)
    mix = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition("=")
        try:
            mix[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"bad behaviour weight in {part!r}: expected name=number") from None
    return check_mix(mix)


# start -> TinyReasoner architecture overrides of an untrained model
SCRATCH: dict[str, dict[str, Any]] = {"scratch": {}, "scratch-l": {k: v for k, v in LARGE.items() if k != "window"}}


def resolve_model(model: str) -> Path | None:
    """``embedded`` / ``tiny-reasoner`` (the shipped TinyReasoner), a local HF directory,
    or None for an untrained start (``scratch``, ``scratch-l``)."""
    if model in SCRATCH:
        return None
    if model in ("embedded", "tiny-reasoner"):
        return reasoner_path()
    path = Path(model)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no Hugging Face model at {path} (no config.json); pass 'embedded', {', '.join(SCRATCH)}"
            " or a local directory"
        )
    return path


def load_start(source: Path | None, model: str) -> tuple[Any, Any]:
    """(model, tokenizer) to train: the HF directory ``source``, or an untrained TinyReasoner."""
    if source is None:
        tokenizer = build_tokenizer()
        return build_model(ReasonerConfig(**SCRATCH[model]), tokenizer), tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(str(source), local_files_only=True), tokenizer


def prime(
    out: str | Path,
    model: str = "embedded",
    mix: dict[str, float] | None = None,
    families: dict[str, tuple[float, tuple[int, ...]]] | None = None,
    config: PrimeConfig | None = None,
    seed: int = 0,
    resume: bool = False,
    threads: int = 1,
    progress_every: int = LOG_EVERY,
    name: str = "Primed model",
) -> dict[str, Any]:
    """Fine-tune ``model`` on behaviour traces into the HF directory ``out``; returns the info.
    Every bad input (behaviour name, task without a step checker, output path) fails here,
    before any model is loaded."""
    mix = check_mix(dict(mix or DEFAULT_MIX))
    families = dict(families or FAMILIES)
    for family in families:
        step_task(family)
    config = config or PrimeConfig()
    out = Path(out).resolve()
    source = resolve_model(model)
    source = source.resolve() if source is not None else None
    if source is None and config.lora:
        raise ValueError(f"--lora adapts a trained model; {model!r} is an untrained start: drop --lora")
    if out == source or WEIGHTS_DIR.resolve() in out.parents or out == WEIGHTS_DIR.resolve():
        raise ValueError(f"--out {out} is a shipped model's directory: priming never writes over one")
    ckpt_path = checkpoint_path(config, out, CHECKPOINT, resume)

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    net, tokenizer = load_start(source, model)
    if config.lora:
        from peft import LoraConfig, get_peft_model

        net = get_peft_model(net, LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0))
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)

    scheduler = warmup_cosine(optimizer, config)
    run = {"model": model if source is None else str(source), "mix": mix,
           "families": {k: list(v) for k, v in families.items()},
           "config": asdict(config), "seed": seed}
    state, selected = TrainState(), None
    if resume:
        ckpt = torch.load(ckpt_path, weights_only=False)
        def same(r: dict[str, Any]) -> dict[str, Any]:  # only the length may change (cosine restretched)
            return {**r, "config": {**r["config"], "steps": None}}

        if same(ckpt["run"]) != same(json_safe(run)) or config.steps < ckpt["state"]["step"]:
            raise ValueError(f"{ckpt_path} was written by another run ({ckpt['run']}); drop --resume or match it")
        state, selected = restore(ckpt, net, optimizer, scheduler, ckpt["run"]["config"]["steps"], config.steps)
    note_threads(state, threads)

    stream = TraceStream(tuple(mix.items()), tuple(families.items()))
    net.train()
    started = time.time() - state.wall_s
    for step in range(state.step, config.steps):
        ids, labels, mask = training_batch(tokenizer, config, seed, step, stream)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            loss = net(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.loss_ema = loss.item() if state.loss_ema is None else 0.95 * state.loss_ema + 0.05 * loss.item()
        done = step + 1
        if done % progress_every == 0:
            print(f"step {done}: loss {state.loss_ema:.4f} ({time.time() - started:.0f}s)", flush=True)
        if done % config.eval_every == 0 or done == config.steps:
            scores = validate_behaviours(net, tokenizer, config.valid, config.valid_problems,
                                         config.valid_samples, seed, config.valid_tokens)
            mean = sum(scores.values()) / len(scores)
            record = {"step": done, "loss": round(state.loss_ema, 5), "valid_pass1": mean, "valid": scores}
            state.history.append(record)
            best = state.selected
            # ">=": among equally good checkpoints the later, more trained one wins.
            if best is None or preference(scores, config.window) >= preference(best["valid"], config.window):
                state.selected = record
                selected = {k: v.detach().clone() for k, v in net.state_dict().items()}
            shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            print(f"step {done}: loss {state.loss_ema:.4f}, valid pass@1 {shown} ({time.time() - started:.0f}s)",
                  flush=True)
            state.step, state.wall_s = done, time.time() - started
            buffer = io.BytesIO()
            torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "state": asdict(state),
                        "selected_weights": selected, "run": json_safe(run)}, buffer)
            atomic_write_bytes(ckpt_path, buffer.getvalue())
    assert selected is not None
    net.load_state_dict(selected)
    if config.lora:
        net = net.merge_and_unload()
    info = {"name": name, **run, "steps_trained": state.step, "selected": state.selected, "history": state.history,
            "schedule_changes": state.schedule_changes,
            "wall_s": round(state.wall_s, 1), "threads": threads, "thread_segments": state.threads,
            "parameters": sum(p.numel() for p in net.parameters())}
    export(net, tokenizer, out, info)
    return info


def json_safe(value: Any) -> Any:
    """Tuples as lists, so a run description compares equal after a checkpoint round trip."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def export(net: Any, tokenizer: Any, out: Path, info: dict[str, Any]) -> None:
    """The HF directory (weights, config, tokenizer, training.json), card last."""
    out.mkdir(parents=True, exist_ok=True)
    net.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    if info["model"] in SCRATCH or (Path(info["model"]) / "special_tokens_map.json").exists():
        atomic_write_json(out / "special_tokens_map.json", tokenizer.special_tokens_map)
    atomic_write_json(out / "training.json", json_safe(info))
    write_model_card(out)
