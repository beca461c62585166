"""Expert rerouting on the fly (Su et al. 2025, "Rewiring Experts on the Fly: Continuous
Rerouting for Better Online Adaptation in Mixture-of-Expert models").

Per request, additive vectors ``delta_l`` on the router logits of the chosen MoE layers
(the last ``layers`` ones; 0: all) start at zero and are optimised by Adam on the
context's own next-token loss — at prefill (the prompt), then every ``every`` generated
tokens (prompt + the tokens generated so far); generation runs with the adapted
routers between updates, and everything is reset for the next request. No labels,
no external data; the model's weights never change. ``n > 1`` samples that many
solutions (one delta per sample once they diverge; the prefill update is shared) and
takes their majority, the composition with self-consistency of the paper.

The offset is applied exactly for every router that computes ``W h`` (all of
:func:`testtime.backends.experts.routers`): a forward pre-hook adds ``u = W^+ delta``
to the router's input only (the experts see the unchanged hidden state), so the
router's logits become ``W h + delta`` (``W`` has full row rank; checked). After an
update the keys/values of the whole sequence are recomputed under the new routing.
Deviations: the paper picks layers by a criterion of its own; here it is the last
``layers``. Decoding is this module's own (batched, KV-cached) loop.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from testtime.backends.experts import moe_info, routers
from testtime.learn.base import METHODS, LearnRequest, build_config, takes_options
from testtime.learn.common import (
    RunDir,
    key_correct,
    majority,
    require_answers,
    solve_each,
    vote_keys,
)
from testtime.scale.common import derive_seed
from testtime.scale.summary import bootstrap_ci
from testtime.tasks.base import Problem


@dataclass
class RerouteConfig:
    n: int = 1
    layers: int = 0  # the last this many MoE layers get an offset; 0: all
    steps: int = 3  # Adam steps per update
    lr: float = 0.05
    every: int = 32  # generated tokens between updates (0: prefill only)
    adapt: bool = True  # False: the unadapted baseline through the same decoding loop
    temperature: float = 1.0
    max_tokens: int = 192
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1 or self.steps < 0 or self.layers < 0 or self.every < 0 or self.max_tokens < 1:
            raise ValueError("n and max_tokens must be >= 1; steps, layers and every >= 0")
        if self.lr <= 0 or self.temperature < 0:
            raise ValueError(f"lr must be > 0 and temperature >= 0, got {self.lr}, {self.temperature}")


@dataclass
class Rerouted:
    """One request's samples (token ids up to and including EOS) and what adapting cost."""

    samples: list[list[int]]
    updates: int
    adapt_tokens: int  # tokens forwarded (and back-propagated) by the updates
    wall_s: float


class Rerouter:
    """Router-logit offsets for one HF MoE causal LM (the weights stay frozen)."""

    def __init__(self, model: nn.Module, eos_id: int | None, pad_id: int, cfg: RerouteConfig) -> None:
        info = moe_info(model)  # a dense model: a clear error naming it, before any generation
        model.requires_grad_(False)  # only the offsets are optimised
        self.model, self.eos_id, self.pad_id, self.cfg = model.eval(), eos_id, pad_id, cfg
        found = routers(model)
        chosen = found[-cfg.layers:] if cfg.layers else found
        if cfg.layers > len(found):
            raise ValueError(f"layers={cfg.layers}, but {info.architecture} has {len(found)} MoE layers")
        self.routers = chosen
        self.pinvs = []
        for r in chosen:
            w = r.weight.detach().float()
            if torch.linalg.matrix_rank(w) < w.shape[0]:
                raise ValueError(f"{info.architecture}: a router weight is rank-deficient; its logits"
                                 " cannot take an arbitrary offset through its input")
            self.pinvs.append(torch.linalg.pinv(w))  # (hidden, experts)
        self.num_experts = info.num_experts
        # transformers 5 renamed past_key_values to cache; accept either API.
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.delta: torch.Tensor | None = None  # (layers, rows, experts)

    @contextmanager
    def _hooks(self, rows: int) -> Iterator[None]:
        def hook(layer: int):
            def add(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
                assert self.delta is not None
                h = args[0]
                u = self.delta[layer] @ self.pinvs[layer].T  # (rows, hidden): W u = delta
                shifted = h.reshape(rows, -1, h.shape[-1]) + u[:, None, :].to(h.dtype)
                return (shifted.reshape(h.shape), *args[1:])
            return add

        handles = [r.register_forward_pre_hook(hook(i)) for i, r in enumerate(self.routers)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _update(self, seq: torch.Tensor, mask: torch.Tensor) -> int:
        """Adam on the next-token loss of ``seq`` (rows' own tokens, ``mask``ed) w.r.t. delta."""
        assert self.delta is not None
        delta = self.delta.detach().requires_grad_(True)
        self.delta = delta
        opt = torch.optim.Adam([delta], lr=self.cfg.lr)
        for _ in range(self.cfg.steps):
            logits = self.model(input_ids=seq, attention_mask=mask).logits[:, :-1].float()
            nll = nn.functional.cross_entropy(logits.transpose(1, 2), seq[:, 1:], reduction="none")
            valid = mask[:, 1:].float()
            loss = ((nll * valid).sum(1) / valid.sum(1).clamp_min(1)).sum()  # rows are independent
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.delta = delta.detach()
        return self.cfg.steps * int(mask.sum())

    def generate(self, prompt: list[int], generator: torch.Generator | None = None) -> Rerouted:
        """``cfg.n`` samples continuing ``prompt`` with rerouting (or without, ``adapt=False``)."""
        cfg, start = self.cfg, time.perf_counter()
        self.delta = torch.zeros(len(self.routers), 1, self.num_experts)
        seq = torch.tensor([prompt])
        mask = torch.ones_like(seq)
        updates, adapt_tokens = 0, 0
        with self._hooks(1), torch.enable_grad():
            if cfg.adapt and cfg.steps:  # the prefill update, shared by every sample
                adapt_tokens += self._update(seq, mask)
                updates += 1
        rows = cfg.n
        self.delta = self.delta.expand(-1, rows, -1).clone()
        seq, mask = seq.expand(rows, -1).clone(), mask.expand(rows, -1).clone()
        done = torch.zeros(rows, dtype=torch.bool)
        with self._hooks(rows):
            out = self._forward(seq, mask, None)
            for t in range(cfg.max_tokens):
                logits = out.logits[:, -1].float()
                if cfg.temperature == 0:
                    token = logits.argmax(-1)
                else:
                    token = torch.multinomial(torch.softmax(logits / cfg.temperature, -1), 1, generator=generator)[:, 0]
                token = torch.where(done, torch.full_like(token, self.pad_id), token)
                seq = torch.cat([seq, token[:, None]], 1)
                mask = torch.cat([mask, (~done).long()[:, None]], 1)
                done |= token == self.eos_id if self.eos_id is not None else torch.zeros_like(done)
                if bool(done.all()) or t + 1 == cfg.max_tokens:
                    break
                if cfg.adapt and cfg.steps and cfg.every and (t + 1) % cfg.every == 0:
                    with torch.enable_grad():
                        adapt_tokens += self._update(seq, mask)
                    updates += 1
                    out = self._forward(seq, mask, None)  # keys/values under the new routing
                else:
                    out = self._forward(token[:, None], mask, getattr(out, self._cache_arg))
        samples = []
        for row, m in zip(seq[:, len(prompt):].tolist(), mask[:, len(prompt):].tolist(), strict=True):
            samples.append([tok for tok, keep in zip(row, m, strict=True) if keep])
        self.delta = None  # reset: nothing carries over to the next request
        return Rerouted(samples, updates, adapt_tokens, time.perf_counter() - start)

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, past: Any):
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        return self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                          **({} if past is None else {self._cache_arg: past}))

    def describe(self) -> dict[str, Any]:
        return {**asdict(self.cfg), "routers": len(self.routers)}


@METHODS.register("rerouting")
@takes_options(RerouteConfig, model="tiny-reasoner-moe")
def rerouting(request: LearnRequest) -> dict[str, Any]:
    """Per problem: ``n`` samples unadapted and ``n`` with rerouting from the same seed
    (paired); pass@1, maj@n and wall time of both. Label-free (the grading is the report's)."""
    from testtime.backends.local import LocalGenerator

    cfg = build_config(RerouteConfig, {"seed": request.seed}, request.options, "rerouting")
    require_answers(request.task, request.problems, "rerouting")
    local = LocalGenerator(request.model_dir, engine="hf")
    pad = local.tokenizer.pad_token_id
    eos = next(iter(local.eos_ids), None)
    pad = pad if pad is not None else (eos if eos is not None else 0)
    adapted = Rerouter(local.hf_model, eos, pad, cfg)
    baseline = Rerouter(local.hf_model, eos, pad, RerouteConfig(**{**asdict(cfg), "adapt": False}))
    run = RunDir(request.out, request.run_config(cfg), request.model_dir)
    task = request.task

    def solve(problem: Problem) -> dict[str, Any]:
        prompt = local.encode_prompt(problem.prompt)
        out: dict[str, Any] = {}
        for name, rerouter in (("before", baseline), ("after", adapted)):
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, problem.id) or 0)
            res = rerouter.generate(prompt, gen)
            texts = [local.detok.decode([t for t in ids if t not in local.eos_ids]) for ids in res.samples]
            keys = vote_keys(task, problem, texts)
            out[name] = {
                "correct": sum(key_correct(task, problem, k) for k in keys),
                "majority_correct": key_correct(task, problem, majority(keys)[0]),
                "tokens": sum(map(len, res.samples)), "updates": res.updates,
                "adapt_tokens": res.adapt_tokens, "wall_s": res.wall_s,
            }
        return out

    try:
        results = solve_each(run, request, solve, "rerouting")
        n = len(results)

        def mean(side: str, key: str, per: int = 1) -> float:
            return sum(r[side][key] for r in results) / (n * per)

        summary = {
            side: {"pass@1": mean(side, "correct", cfg.n), f"maj@{cfg.n}": mean(side, "majority_correct"),
                   "mean_tokens": mean(side, "tokens"), "mean_wall_s": mean(side, "wall_s"),
                   "mean_updates": mean(side, "updates")}
            for side in ("before", "after")
        }
        overhead = summary["after"]["mean_wall_s"] / max(summary["before"]["mean_wall_s"], 1e-9)
        paired = {}  # after − before per problem (same seeds): mean and its 95% bootstrap interval
        for name, key, per in (("pass@1", "correct", cfg.n), (f"maj@{cfg.n}", "majority_correct", 1)):
            diffs = [(r["after"][key] - r["before"][key]) / per for r in results]
            paired[name] = [sum(diffs) / n, *bootstrap_ci(diffs, seed=cfg.seed)]
        return run.finish({"config": adapted.describe(), "labels": "none", "problems": n, **summary,
                           "paired_difference": paired, "wall_overhead": overhead})
    finally:
        run.close()
