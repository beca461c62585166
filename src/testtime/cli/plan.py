"""``testtime scale --dry-run``: the plan of a scaling run and how long it will take,
without running it.

The plan is the harness's own (:func:`testtime.scale.plan.make_plan`), so the
counts are what a run does: per pool group one pool of max(N) samples per problem,
sampled ``batch_samples`` sequences per batched call; per other strategy one run per
budget and problem. The time estimate comes from a probe — one batched pool call of
the run's shape (and one problem per non-pool strategy at its smallest budget), timed on this
machine — extrapolated linearly (search strategies: in N). Nothing is stored; the
probe's samples are thrown away. The estimate is of the generation only (model
loading and the reports add seconds). Deviation: the probe's problems are a few, so
their solution lengths stand in for all of them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from testtime.backends.base import Generator
from testtime.scale.base import Compute
from testtime.scale.common import score_candidates
from testtime.scale.plan import Plan, budgets_of, build_strategy
from testtime.verifiers.base import Verifier


@dataclass
class Line:
    """One line of the plan: what a strategy (or a shared pool) costs over all problems."""

    what: str
    budgets: list[int]
    problems: int
    sequences: float  # samples (pool) or probe-extrapolated samples (search)
    calls: float | None  # model calls (search strategies: extrapolated from the probe)
    seconds: float | None = None
    tokens: float | None = None


@dataclass
class Estimate:
    lines: list[Line] = field(default_factory=list)
    probe: str = ""

    @property
    def seconds(self) -> float | None:
        parts = [ln.seconds for ln in self.lines]
        return None if any(p is None for p in parts) else sum(parts)  # type: ignore[misc]


def estimate(
    plan: Plan,
    generator: Generator,
    verifier: Verifier | None,
    *,
    batch_samples: int = 64,
    probe: bool = True,
) -> Estimate:
    """Counts of ``plan`` and (with ``probe``) a measured time and token estimate."""
    problems = [p for ps in plan.problems.values() for p in ps]
    # Problems taken from every difficulty in turn, so the probe sees the spread of lengths.
    levels = list(plan.problems.values())
    spread = [ps[i] for i in range(max(map(len, levels))) for ps in levels if i < len(ps)]
    result = Estimate()
    for group in plan.groups:
        per_call = max(1, batch_samples // group.size)
        calls = sum(math.ceil(len(ps) / per_call) for ps in plan.problems.values())
        budgets = sorted({k for m in group.members for k in budgets_of(plan.strategies[m], plan.budgets)})
        line = Line(f"pool of {group.size} ({', '.join(group.members)})", budgets, len(problems),
                    len(problems) * group.size, calls)
        if probe:  # one call shaped like the run's: per_call problems × the pool size
            batch = spread[:per_call]
            k = min(group.size, batch_samples)
            began = time.perf_counter()
            pools = group.sampler.sample_pools(batch, generator, plan.task, k, logprobs=group.logprobs)
            if group.scored and verifier is not None:
                for problem, (pool, _) in zip(batch, pools, strict=True):
                    score_candidates(pool, problem, verifier, Compute())
            wall = time.perf_counter() - began
            made = sum(len(pool) for pool, _ in pools)
            tokens = sum(u.total_tokens for _, u in pools)
            line.seconds = line.sequences * wall / made
            line.tokens = line.sequences * tokens / made
            result.probe += f"pool: {made} samples in {wall:.1f} s ({tokens / wall:.0f} tokens/s); "
        result.lines.append(line)
    for name in plan.per_budget:
        strategy = plan.strategies[name]
        budgets = budgets_of(strategy, plan.budgets)
        line = Line(name, budgets, len(problems), float("nan"), None)
        if probe:
            smallest = build_strategy(name, plan.options, budgets[0] if strategy.budget_param else None)
            # The easiest and the hardest level's first problem; cost assumed linear in N.
            sample = [levels[0][0], levels[-1][0]] if len(levels) > 1 else [levels[0][0]]
            began = time.perf_counter()
            results = smallest.solve(sample, generator, plan.task, verifier)
            wall = (time.perf_counter() - began) / len(sample)
            c = sum((r.compute for r in results), Compute())
            per = len(problems) * sum(budgets) / budgets[0] / len(sample)
            line.seconds = per * wall * len(sample)
            line.tokens = per * (c.prompt_tokens + c.generated_tokens + c.verifier_tokens)
            line.sequences = per * max(1, sum(len(r.candidates) for r in results))
            line.calls = per * c.model_calls
            result.probe += f"{name}@{budgets[0]}: {wall:.1f} s per problem; "
        result.lines.append(line)
    return result


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(plan: Plan, est: Estimate) -> str:
    """The plan as plain lines (for a terminal or a log)."""
    levels = ", ".join(f"{d} ({len(ps)})" for d, ps in plan.problems.items())
    out = [f"plan: task {plan.task.name}; difficulties (problems): {levels}; budgets N: "
           f"{', '.join(map(str, plan.budgets))}"]
    for ln in est.lines:
        seqs = "?" if math.isnan(ln.sequences) else f"{ln.sequences:.0f}"
        tokens = "?" if ln.tokens is None else f"{ln.tokens:,.0f}"
        calls = "?" if ln.calls is None else f"{ln.calls:.0f}"
        out.append(f"  {ln.what}: N {','.join(map(str, ln.budgets))} × {ln.problems} problems: "
                   f"{seqs} samples, {calls} model calls, ~{tokens} tokens (policy + verifier), "
                   f"~{duration(ln.seconds)}")
    if est.probe:
        out.append(f"probe: {est.probe.rstrip('; ')}")
    out.append(f"estimated time: ~{duration(est.seconds)}"
               + (" of generation (start-up and reports add seconds)" if est.probe else " (not measured)"))
    return "\n".join(out) + "\n"
