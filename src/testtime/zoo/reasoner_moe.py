"""TinyReasoner-MoE: a small Mixtral-format mixture-of-experts causal LM trained from
scratch on TinyReasoner's task families and recipe, the embedded model the
mixture-of-experts methods (Dynamic Experts Search, expert rerouting) run on.

Same data and loop as :mod:`testtime.zoo.reasoner` (deterministic batches per
(seed, step), loss on solution tokens, AdamW warm-up + cosine, validation pass@1
on arith level 6 every ``eval_every`` steps, atomic checkpoint, ``resume=True``,
checkpoint selection in a pass@1 window) and the same character tokenizer. The
model is ``MixtralForCausalLM`` (``AutoModelForCausalLM`` and vLLM load it): 8
experts per layer, top-2 routing, plus Mixtral's load-balancing loss (Switch
Transformer auxiliary loss, ``aux_coef``) so every expert gets trained — without
it a few experts take all tokens and varying the expert count means little.
Prime it afterwards like TinyReasoner: ``testtime zoo prime --model <out>``.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import MixtralConfig, MixtralForCausalLM, PreTrainedTokenizerBase

from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from testtime.zoo.batches import training_batch
from testtime.zoo.moe_card import card as model_card
from testtime.zoo.reasoner import ReasonerConfig, validate
from testtime.zoo.reasoner_data import KINDS, MIXTURE
from testtime.zoo.tokenizer import build_tokenizer, save_tokenizer
from testtime.zoo.training import (
    LOG_EVERY,
    TrainState,
    checkpoint_path,
    note_threads,
    preference,
    restore,
    warmup_cosine,
)

CHECKPOINT = "checkpoints/moe.pt"


@dataclass
class MoEConfig(ReasonerConfig):
    """TinyReasoner's fields plus the experts."""

    n_experts: int = 8
    top_k: int = 2
    expert_size: int = 192  # each expert's SwiGLU width: ~1.5M of 4.1M parameters active at k=2
    aux_coef: float = 0.02
    steps: int = 4000  # 2.2 s/step on one thread of the loaded 2-core box (measured); TinyReasoner: 7500

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= self.n_experts:
            raise ValueError(f"top_k must be in [1, n_experts={self.n_experts}], got {self.top_k}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} must be a multiple of n_head {self.n_head}")


def build_model(config: MoEConfig, tokenizer: PreTrainedTokenizerBase) -> MixtralForCausalLM:
    mixtral = MixtralConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.n_embd,
        intermediate_size=config.expert_size,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_head,
        max_position_embeddings=config.n_positions,
        num_local_experts=config.n_experts,
        num_experts_per_tok=config.top_k,
        router_aux_loss_coef=config.aux_coef,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        sliding_window=None,
        attention_dropout=0.0,
    )
    return MixtralForCausalLM(mixtral)


def train_moe(
    out: str | Path,
    steps: int | None = None,
    seed: int = 0,
    resume: bool = False,
    config: MoEConfig | None = None,
    threads: int = 1,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train TinyReasoner-MoE into the Hugging Face directory ``out``; returns the training
    info. ``stop_after`` ends this session after a checkpoint (continue with ``resume``)."""
    out = Path(out)
    config = config or MoEConfig()
    if steps is not None:
        config.steps = steps
    ckpt_path = checkpoint_path(config, out, CHECKPOINT, resume)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    model = build_model(config, tokenizer)
    model.set_experts_implementation("eager")  # on CPU 2.2 s/step vs grouped_mm's 3.0 (measured)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)

    scheduler = warmup_cosine(optimizer, config)
    state, selected = TrainState(), None
    if resume:
        ckpt = torch.load(ckpt_path, weights_only=False)
        if {**ckpt["config"], "steps": config.steps} != _jsonable(asdict(config)) or ckpt["seed"] != seed or (
            config.steps < ckpt["state"]["step"]
        ):
            raise ValueError(
                f"{ckpt_path} was written with another configuration or seed, or is past --steps"
                f" (at step {ckpt['state']['step']}, seed {ckpt['seed']}); drop --resume or match them"
            )
        state, selected = restore(ckpt, model, optimizer, scheduler, ckpt["config"]["steps"], config.steps)
    note_threads(state, threads)

    model.train()
    started = time.time() - state.wall_s
    for step in range(state.step, config.steps):
        ids, labels, mask = training_batch(tokenizer, config, seed, step)
        output = model(input_ids=ids, attention_mask=mask, labels=labels, output_router_logits=True)
        output.loss.backward()  # the LM loss + aux_coef x the load-balancing loss
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        lm = (output.loss - config.aux_coef * output.aux_loss).item()
        state.loss_ema = lm if state.loss_ema is None else 0.95 * state.loss_ema + 0.05 * lm
        done = step + 1
        if done % LOG_EVERY == 0:
            print(f"step {done}: loss {state.loss_ema:.4f} aux {output.aux_loss.item():.3f}"
                  f" ({time.time() - started:.0f}s)", flush=True)
        if done % config.eval_every == 0 or done == config.steps:
            pass1 = validate(model, tokenizer, config, seed)
            record = {"step": done, "loss": round(state.loss_ema, 5), "valid_pass1": pass1}
            state.history.append(record)
            best = state.selected
            if best is None or preference(pass1, config.window) >= preference(best["valid_pass1"], config.window):
                state.selected = record
                selected = {k: v.detach().clone() for k, v in model.state_dict().items()}
            print(f"step {done}: loss {state.loss_ema:.4f}, valid pass@1 {pass1:.3f}", flush=True)
        if done % config.eval_every == 0 or done in (config.steps, stop_after):
            state.step, state.wall_s = done, time.time() - started
            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "state": asdict(state), "selected_weights": selected,
                        "config": _jsonable(asdict(config)), "seed": seed}, buffer)
            atomic_write_bytes(ckpt_path, buffer.getvalue())
        if done == stop_after and done < config.steps:
            return {"steps_trained": done, "complete": False, "history": state.history}
    assert selected is not None
    model.load_state_dict(selected)
    info = {
        "model": "tiny-reasoner-moe", "seed": seed, "config": _jsonable(asdict(config)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps_trained": state.step, "complete": state.step == config.steps, "selected": state.selected,
        "history": state.history, "schedule_changes": state.schedule_changes,
        "wall_s": round(state.wall_s, 1), "threads": threads, "thread_segments": state.threads,
        "mixture": {"families": {k: {"share": w, "difficulties": list(d)} for k, (w, d) in MIXTURE.items()},
                    "kinds": KINDS},
    }
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    save_tokenizer(out)
    atomic_write_json(out / "training.json", info)
    atomic_write_text(out / "README.md", model_card(info))  # last: a directory with a card is complete
    return info


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return list(value) if isinstance(value, tuple) else value


def init_moe_dir(out: str | Path, config: MoEConfig, seed: int = 0) -> Path:
    """An untrained (randomly initialised) TinyReasoner-MoE directory with its tokenizer:
    for tests and smoke runs of the MoE methods before the trained model ships."""
    out = Path(out)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    build_model(config, tokenizer).save_pretrained(str(out), safe_serialization=True)
    save_tokenizer(out)
    return out
