"""Planning a scaling run: which strategies run how, checked before a single token.

Pool strategies (sample, majority, weighted-majority, best-of-n, rpc) that sample
alike form a :class:`PoolGroup` sharing one pool of max(N) per problem; the
others — and pool strategies reading a *relative* verifier (a pairwise judge,
whose scores depend on the set judged) — run once per budget.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from testtime.backends.base import Generator
from testtime.scale.base import STRATEGIES, Strategy
from testtime.scale.common import check_positive
from testtime.scale.pool import PoolStrategy
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier


def accepts(name: str, option: str) -> bool:
    """Whether strategy ``name``'s constructor takes keyword ``option``."""
    params = inspect.signature(STRATEGIES.get(name)).parameters
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_strategy(name: str, options: dict[str, Any], budget: int | None = None) -> Strategy:
    """Strategy ``name`` with the ``options`` its constructor accepts (others are
    meant for other strategies) and, when it has one, its budget set to ``budget``."""
    factory = STRATEGIES.get(name)
    kwargs = {k: v for k, v in options.items() if accepts(name, k)}
    budget_param = getattr(factory, "budget_param", "n")
    if budget_param is not None and budget is not None:
        kwargs[budget_param] = budget
    return factory(**kwargs)


def budgets_of(strategy: Strategy, budgets: Sequence[int]) -> list[int]:
    """The budgets a strategy is reported at (fixed-budget ones: just N = 1)."""
    return list(budgets) if strategy.budget_param is not None else [1]


@dataclass
class PoolGroup:
    """Pool strategies that sample alike and so share one pool per problem."""

    key: tuple[Any, ...]
    sampler: PoolStrategy
    members: list[str] = field(default_factory=list)
    size: int = 1
    logprobs: bool = False
    scored: bool = False


@dataclass
class Plan:
    """A validated scaling run: built before a single token is generated."""

    task: Task
    problems: dict[int, list[Problem]]
    strategies: dict[str, Strategy]
    budgets: list[int]
    groups: list[PoolGroup]
    per_budget: list[str]  # strategies run once per budget
    options: dict[str, Any]  # strategy options, as given (seed included)


def make_plan(
    task: Task,
    generator: Generator,
    strategy_names: Sequence[str],
    budgets: Sequence[int],
    *,
    verifier: Verifier | None = None,
    difficulties: Sequence[int] | None = None,
    limit: int = 50,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> Plan:
    """Check everything (names, budgets, capabilities, verifier needs, problems) up front."""
    if not strategy_names:
        raise ValueError("no strategy given")
    if len(set(strategy_names)) != len(strategy_names):
        raise ValueError(f"a strategy is listed twice: {', '.join(strategy_names)}")
    if not budgets:
        raise ValueError("no budget N given")
    for n in budgets:
        check_positive("every budget N", n)
    check_positive("limit", limit)
    budgets = sorted(set(budgets))
    options = dict(options or {})
    options.setdefault("seed", seed)
    strategies: dict[str, Strategy] = {}
    for name in strategy_names:
        strategy = build_strategy(name, options, max(budgets))
        strategy.check(task, generator, verifier)
        strategies[name] = strategy
    levels = list(difficulties) if difficulties else list(task.levels)
    problems = {d: task.generate(limit, d, seed) for d in levels}
    for d, ps in problems.items():
        if not ps:
            raise ValueError(f"task {task.name!r} produced no problems at difficulty {d}")
    groups: dict[tuple[Any, ...], PoolGroup] = {}
    per_budget = []
    for name, strategy in strategies.items():
        # A relative verifier (pairwise judge) scores each candidate set on its own: a
        # strategy reading it runs once per budget, charged the judge's O(k²) prompts.
        relative = verifier is not None and verifier.relative and strategy.reads_verifier(verifier)
        if not isinstance(strategy, PoolStrategy) or relative:
            per_budget.append(name)
            continue
        group = groups.setdefault(strategy.pool_key(), PoolGroup(strategy.pool_key(), strategy))
        group.members.append(name)
        group.size = max(group.size, *budgets_of(strategy, budgets))
        group.logprobs |= strategy.wants_logprobs
        group.scored |= strategy.needs_verifier
    return Plan(task, problems, strategies, budgets, list(groups.values()), per_budget, options)


def count_work(plan: Plan) -> int:
    """Problems' worth of generation the plan needs, for a progress bar."""
    per_difficulty = len(plan.groups) + sum(
        len(budgets_of(plan.strategies[name], plan.budgets)) for name in plan.per_budget
    )
    return per_difficulty * sum(len(ps) for ps in plan.problems.values())
