"""Expert-count control for Hugging Face mixture-of-experts models: generate with ``k``
activated experts per token, chosen per call (the "Dynamic MoE" of Han et al. 2025,
"Dynamic Experts Search: Enhancing Reasoning in Mixture-of-Experts LLMs at Test Time").

transformers (v5) gives every MoE layer a router module that holds ``top_k`` and
``num_experts`` and computes its logits as ``F.linear(hidden, weight)``: Mixtral,
Qwen2/3-MoE, OLMoE, DeepSeek-V2/V3, GraniteMoE, PhiMoE... :func:`moe_info` finds them
(any module with an integer ``top_k``, an integer ``num_experts`` and a
``(num_experts, hidden)`` weight) and :func:`active_experts` sets ``top_k`` on all of
them for one call, restoring it afterwards, under a per-model lock so concurrent
requests with different counts never see each other's setting. Grouped routers
(DeepSeek-V3: ``n_group`` / ``topk_group``) cap ``k`` at the experts their chosen groups
hold. A dense model or a count above the experts is refused before any generation,
naming the architecture.

FLOPs: :class:`ExpertsGenerator` reports the parameters *active* at ``k`` (every
non-expert parameter plus ``k / num_experts`` of the routed experts'), so the
compute ledger's ``2 x parameters x tokens`` counts the expert FLOPs really spent.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch import nn

from testtime.backends.base import (
    CancelToken,
    FinishCallback,
    GenerationResult,
    Generator,
    SamplingParams,
)

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


DENSE_HINT = (
    "expert-count control, Dynamic Experts Search and expert rerouting need an MoE model"
    " (Mixtral, Qwen-MoE, OLMoE, DeepSeek-MoE... or the embedded tiny-reasoner-moe)"
)


class NotMoE(ValueError):
    """Expert-count control asked of a model without routed experts."""


@dataclass(frozen=True)
class MoEInfo:
    architecture: str
    num_experts: int
    default_k: int
    max_k: int  # the largest count the routers can honour (grouped routers: fewer than the experts)
    moe_layers: int
    total_parameters: int
    expert_parameters: int  # the routed experts' parameters (shared experts are always active)

    def active_parameters(self, k: int) -> int:
        """Parameters one token passes through with ``k`` routed experts per layer."""
        return self.total_parameters - self.expert_parameters + round(self.expert_parameters * k / self.num_experts)

    def check(self, k: int) -> int:
        """``k`` if the model can activate that many experts, else a clear error."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.max_k:
            limit = "" if self.max_k == self.num_experts else f" (its grouped routers reach at most {self.max_k})"
            raise ValueError(
                f"experts must be an integer in [1, {self.max_k}] for {self.architecture}, which has"
                f" {self.num_experts} experts per layer{limit}; got {k!r}"
            )
        return k


def architecture(model: nn.Module) -> str:
    archs = getattr(getattr(model, "config", None), "architectures", None)
    return archs[0] if archs else type(model).__name__


def routers(model: nn.Module) -> list[nn.Module]:
    """The router modules of ``model``'s MoE layers (see the module docstring)."""
    found = []
    for module in model.modules():
        top_k, n = getattr(module, "top_k", None), getattr(module, "num_experts", None)
        weight = getattr(module, "weight", None)
        if (isinstance(top_k, int) and isinstance(n, int) and not isinstance(top_k, bool)
                and isinstance(weight, nn.Parameter) and weight.dim() == 2 and weight.shape[0] == n):
            found.append(module)
    return found


def moe_info(model: nn.Module) -> MoEInfo:
    """What expert-count control needs to know; :class:`NotMoE` for a dense model."""
    found = routers(model)
    if not found:
        raise NotMoE(f"{architecture(model)} is a dense model (no mixture-of-experts router): {DENSE_HINT}")
    owners = {id(r): parent for parent in model.modules() for r in parent.children() if r in found}
    experts = 0
    for r in found:
        bank = getattr(owners.get(id(r)), "experts", None)
        if not isinstance(bank, nn.Module):
            raise NotMoE(f"{architecture(model)}: router {type(r).__name__} has no sibling 'experts' module")
        experts += sum(p.numel() for p in bank.parameters())
    n = found[0].num_experts
    if any(r.num_experts != n for r in found):
        raise NotMoE(f"{architecture(model)} has layers with different expert counts; not supported")
    max_k = n
    for r in found:
        groups, keep = getattr(r, "num_group", None), getattr(r, "topk_group", None)
        if isinstance(groups, int) and isinstance(keep, int) and groups > 0:
            max_k = min(max_k, keep * (n // groups))
    return MoEInfo(architecture(model), n, found[0].top_k, max_k, len(found),
                   sum(p.numel() for p in model.parameters()), experts)


def _lock(model: nn.Module) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(model, threading.RLock())


@contextmanager
def active_experts(model: nn.Module, k: int | None) -> Iterator[MoEInfo]:
    """Run the body with ``k`` experts per token in every MoE layer (None: the model's own
    count), holding the model's lock; every router's ``top_k`` is restored on exit."""
    info = moe_info(model)
    if k is not None:
        info.check(k)
    with _lock(model):
        found = routers(model)
        saved = [r.top_k for r in found]
        try:
            for r in found:
                r.top_k = info.default_k if k is None else k
            yield info
        finally:
            for r, old in zip(found, saved, strict=True):
                r.top_k = old


def hf_model(generator: Generator) -> nn.Module:
    """The in-process transformers model behind ``generator``, or a clear error."""
    model = getattr(generator, "hf_model", None)
    if getattr(generator, "lean", None) is not None:  # the lean engine runs GPT-2 only
        raise NotMoE(f"GPT2LMHeadModel ({generator.name}) is a dense model: {DENSE_HINT}")
    if not isinstance(model, nn.Module):
        raise NotMoE(
            f"backend {generator.name!r} exposes no in-process transformers model, so its expert"
            " count cannot be set: use a local MoE model directory (engine 'hf')"
        )
    return model


class ExpertsGenerator(Generator):
    """``inner`` (an in-process HF MoE generator) sampling with ``k`` experts per token.
    Views of one model with different counts may be used from several threads."""

    def __init__(self, inner: Generator, k: int | None = None) -> None:
        self.inner = inner
        self.model = hf_model(inner)
        self.info = moe_info(self.model)
        self.k = self.info.default_k if k is None else self.info.check(k)
        self.name = f"{inner.name}:experts={self.k}"
        self.capabilities = inner.capabilities

    @property
    def num_parameters(self) -> int:
        return self.info.active_parameters(self.k)

    def with_k(self, k: int) -> ExpertsGenerator:
        """Another view of the same model with ``k`` experts (validated now)."""
        return ExpertsGenerator(self.inner, k)

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        on_finish: FinishCallback | None = None,
    ) -> GenerationResult:
        with active_experts(self.model, self.k):
            return self.inner.generate(prompts, params, cancel=cancel, on_finish=on_finish)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def describe(self) -> dict[str, Any]:
        info = self.info
        return {**self.inner.describe(), "name": self.name, "num_parameters": self.num_parameters,
                "experts": {"architecture": info.architecture, "active": self.k, "of": info.num_experts,
                            "default": info.default_k, "total_parameters": info.total_parameters}}


def with_experts(generator: Generator, k: int | None = None) -> Generator:
    """``generator`` with ``k`` activated experts (None: the model's default), refusing a
    dense model or a bad count before any generation. Views are re-based on the model;
    a delegating wrapper (one with an ``inner`` generator, such as the server's
    per-request proxy) is copied around the new view, so it still runs first (the
    server's turn on the model is taken before the model's expert lock)."""
    if isinstance(generator, ExpertsGenerator):
        return generator.with_k(generator.info.default_k if k is None else k)
    inner = getattr(generator, "inner", None)
    if isinstance(inner, Generator) and getattr(generator, "hf_model", None) is None:
        view = copy.copy(generator)
        view.inner = with_experts(inner, k)
        view.name = view.inner.name
        return view
    return ExpertsGenerator(generator, k)


def experts_info(generator: Generator) -> MoEInfo:
    """The MoE facts of the model behind ``generator`` (through delegating wrappers)."""
    while not isinstance(generator, ExpertsGenerator) and isinstance(getattr(generator, "inner", None), Generator):
        generator = generator.inner
    return generator.info if isinstance(generator, ExpertsGenerator) else moe_info(hf_model(generator))
