"""Evaluating every budget k on k-subsets of one pool of max(N) samples: which
subsets (the same for every strategy, so comparisons at equal N are paired) and
what a budget-k run of them costs (the prompt once, k/N of the samples)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from testtime.scale.base import Compute
from testtime.scale.common import derive_seed

COMPUTE_FIELDS = (
    "generated_tokens", "prompt_tokens", "cached_tokens", "verifier_tokens", "charged_tokens",
    "computed_tokens", "flops", "model_calls", "wall_s",
)


def subsets(pool_size: int, k: int, max_subsets: int, rng: np.random.Generator) -> list[list[int]]:
    """Index subsets of size k used to evaluate budget k on a pool: all of them when
    there are at most ``max_subsets`` (and always every single sample for k = 1, the
    pass@1 estimate), else ``max_subsets`` drawn without replacement."""
    if not 1 <= k <= pool_size:
        raise ValueError(f"subset size {k} outside 1..{pool_size}")
    if k == 1 or math.comb(pool_size, k) <= max_subsets:
        return [list(c) for c in itertools.combinations(range(pool_size), k)]
    return [sorted(rng.choice(pool_size, size=k, replace=False).tolist()) for _ in range(max_subsets)]


def paired_subsets(pool_size: int, k: int, max_subsets: int, seed: int, problem_id: str) -> list[list[int]]:
    """The k-subsets budget k is evaluated on for one problem: the same for every
    strategy (seeded by problem and k only), so differences between strategies at
    equal N are paired down to the candidates they saw."""
    rng = np.random.default_rng(derive_seed(seed, "subsets", k, problem_id))
    return subsets(pool_size, k, max_subsets, rng)


def compute_share(compute: Compute, fraction: float = 1.0) -> dict[str, float | None]:
    """What a budget-k subsample of a pool costs (``fraction`` = k / pool size): the
    prompt once (as one call with n = k would send it), ``fraction`` of the samples,
    their verifier scores and time; FLOPs follow the computed tokens."""
    gen = compute.generated_tokens * fraction
    prompt, cached = compute.prompt_tokens, compute.cached_tokens
    ver = compute.verifier_tokens * fraction
    ver_computed = (compute.verifier_tokens - compute.verifier_cached_tokens) * fraction
    flops = None
    if compute.policy_flops is not None and compute.verifier_flops is not None:
        computed = compute.prompt_tokens - cached + compute.generated_tokens
        per_token = compute.policy_flops / computed if computed else 0.0
        flops = per_token * (prompt - cached + gen) + compute.verifier_flops * fraction
    return {
        "generated_tokens": gen, "prompt_tokens": prompt, "cached_tokens": cached,
        "verifier_tokens": ver, "charged_tokens": prompt + gen + ver,
        "computed_tokens": prompt - cached + gen + ver_computed, "flops": flops,
        "model_calls": compute.model_calls, "wall_s": compute.wall_s * fraction,
    }


def add_costs(total: dict[str, float | None], part: dict[str, float | None]) -> dict[str, float | None]:
    return {f: None if total[f] is None or part[f] is None else total[f] + part[f] for f in COMPUTE_FIELDS}
