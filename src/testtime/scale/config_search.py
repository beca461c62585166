"""AgentTTS (Wang et al. 2025, "Agentic test-time scaling"; spec §11) as a strategy:
search the configuration space for one budget on a calibration split, then run
the configuration found on every test problem.

The search (:func:`testtime.scale.agent_search.agent_search`) starts from the
cheapest configuration of each method and refines around the best so far; each
evaluation costs the calibration tokens it spends, and the search stops at
``search_budget``. Deviation from the paper: the proposer is a fixed
neighbourhood rule (:func:`testtime.scale.configs.neighbours`), not an LLM agent,
and evaluations read calibration measurements rather than fresh runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from testtime.backends.base import Generator
from testtime.scale.agent_search import SearchResult, agent_search
from testtime.scale.base import STRATEGIES, ProblemResult
from testtime.scale.compute_optimal import Calibrated
from testtime.scale.configs import METHODS, Config, neighbours
from testtime.scale.optimal_policy import CalibrationRecord
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier


def search_config(
    records: Sequence[CalibrationRecord],
    configs: Sequence[Config],
    budget: int,
    search_budget: float,
) -> SearchResult[Config]:
    """Search for one budget over calibration records; over-budget configurations score -1."""
    known = {c.name: c for c in configs}

    def evaluate(config: Config) -> tuple[float, float]:
        if config.name not in known:  # not calibrated: no evidence for it, no cost
            return float("-inf"), 0.0
        spent = float(np.mean([r.cost[config.name] for r in records]))
        acc = float(np.mean([r.accuracy[config.name] for r in records]))
        return (acc if spent <= budget else -1.0), spent * len(records)

    starts = [min((c for c in configs if c.method == m), key=lambda c: c.n) for m in METHODS
              if any(c.method == m for c in configs)]
    return agent_search(starts, evaluate, neighbours, search_budget)


@STRATEGIES.register("agent-tts")
class AgentTTS(Calibrated):
    """One configuration for every problem within ``budget`` generated + verifier
    tokens, found by :func:`search_config` (``search_budget`` calibration tokens)."""

    name = "agent-tts"

    def __init__(
        self,
        budget: int = 2048,
        search_budget: float = 1e7,
        calibration: int = 8,
        calib_seed: int | None = None,
        calib_levels: Sequence[int] | None = None,
        max_n: int = 16,
        beam: bool = True,
        revise: bool = False,
        epsilon: float = 0.01,
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_tokens: int = 256,
        step_tokens: int = 64,
        aggregation: str = "last",
        seed: int | None = 0,
    ) -> None:
        super().__init__(budget, calibration, calib_seed, calib_levels, max_n, beam, revise, epsilon,
                         temperature, top_p, max_tokens, step_tokens, aggregation, seed)
        if not search_budget > 0:
            raise ValueError(f"search budget must be positive, got {search_budget}")
        self.search_budget = float(search_budget)
        self.found: dict[str, SearchResult[Config]] = {}

    def config_for(self, problems: Sequence[Problem], generator: Generator, task: Task,
                   verifier: Verifier) -> SearchResult[Config]:
        if verifier.name not in self.found:
            split = self.calibration_split(task, problems)
            records, configs = self.measure(split, generator, task, verifier, 0, "verifier")
            result = search_config(records, configs, self.budget, self.search_budget)
            if result.best_score < 0:
                cheapest = min(np.mean([r.cost[c.name] for r in records]) for c in configs)
                raise ValueError(f"budget {self.budget} tokens is below the cheapest configuration "
                                 f"({cheapest:.0f} tokens)")
            self.found[verifier.name] = result
        return self.found[verifier.name]

    def solve(
        self, problems: Sequence[Problem], generator: Generator, task: Task, verifier: Verifier | None = None
    ) -> list[ProblemResult]:
        self.check(task, generator, verifier)
        assert verifier is not None
        self.config_for(problems, generator, task, verifier)  # searched before any test problem
        return super().solve(problems, generator, task, verifier)

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        assert verifier is not None
        found = self.config_for([problem], generator, task, verifier)
        result = found.best.build(self.options).solve(
            [problem], generator, task, verifier
        )[0]
        result.meta.update(config=found.best.name, calibration_score=found.best_score,
                           search_spent=found.spent, budget=self.budget)
        return result
