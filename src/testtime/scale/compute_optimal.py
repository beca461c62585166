"""Compute-optimal allocation of test-time compute (Snell et al. 2024, §3; spec §§2, 7, 11).

Per problem: sample a few probes, estimate the problem's difficulty label-free
(:mod:`testtime.scale.difficulty`), bin it, and spend the budget on the
configuration (:mod:`testtime.scale.configs`) a policy fitted on a calibration
split chose for that bin and budget (:mod:`testtime.scale.optimal_policy`).
The calibration split spans every difficulty level of the task and one policy
is fitted across them, so a test problem's true level is never read.

Compute is counted as generated + verifier tokens per problem; the probes' tokens
count toward the problem's budget (their samples join the pool of pool methods).
Deviations: budgets in tokens, not generations; difficulty from the verifier's
mean final score of ``probes`` samples rather than Snell's 2048-sample oracle
bins (``estimate=oracle`` is that upper bound, ``labels: gold-difficulty``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from testtime.backends.base import Generator
from testtime.scale.base import STRATEGIES, Candidate, Compute, ProblemResult, Strategy
from testtime.scale.common import check_aggregation, check_positive, derive_seed, score_candidates
from testtime.scale.configs import Config, tokens
from testtime.scale.difficulty import assign_bin, check_binning, check_estimate, difficulty_estimate
from testtime.scale.optimal_policy import Policy, calibrate, fit_policy, pool_sampler
from testtime.scale.pool import PoolStrategy
from testtime.store.runstore import fingerprint
from testtime.tasks.base import Problem, Task
from testtime.tasks.labels import labels_tag
from testtime.verifiers.base import Verifier


class Calibrated(Strategy):
    """Shared by compute-optimal and agent-tts: sampling options, a calibration split
    over every level (disjoint from the test problems) and its measurements."""

    needs_verifier = True
    budget_param = None  # the budget is in tokens (option ``budget``), not a sample count

    def __init__(
        self, budget: int, calibration: int, calib_seed: int | None, calib_levels: Sequence[int] | None,
        max_n: int, beam: bool, revise: bool, epsilon: float, temperature: float, top_p: float,
        max_tokens: int, step_tokens: int, aggregation: str, seed: int | None,
    ) -> None:
        self.budget = check_positive("budget", budget)
        self.calibration = check_positive("calibration", calibration)
        self.max_n = check_positive("max_n", max_n)
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
        self.beam, self.revise, self.epsilon = beam, revise, epsilon
        self.calib_levels = None if calib_levels is None else [int(x) for x in calib_levels]
        self.options = {
            "temperature": temperature, "top_p": top_p, "max_tokens": max_tokens,
            "step_tokens": step_tokens, "aggregation": check_aggregation(aggregation), "seed": seed,
        }
        pool_sampler(self.options, seed)  # validates the sampling options now
        self.seed = seed
        self.calib_seed = calib_seed if calib_seed is not None else derive_seed(seed or 0, "calibration")

    def check(self, task: Task, generator: Generator, verifier: Verifier | None) -> None:
        super().check(task, generator, verifier)
        if verifier is not None and verifier.relative:
            raise ValueError(
                f"strategy {self.name!r} scores probes and pools once and subsamples them; "
                f"verifier {verifier.name!r} scores relative to the set judged (use a pointwise one)"
            )

    def calibration_split(self, task: Task, test: Sequence[Problem]) -> list[Problem]:
        """``calibration`` problems per level; refuses any that is also a test problem."""
        levels = self.calib_levels or list(task.levels)
        split = [p for level in levels for p in task.generate(self.calibration, level, self.calib_seed)]
        overlap = {p.prompt for p in split} & {p.prompt for p in test}
        if overlap:
            raise ValueError(
                f"{len(overlap)} test problem(s) are in the calibration split "
                f"(calib_seed={self.calib_seed}); choose another calib_seed"
            )
        return split

    def measure(
        self, split: Sequence[Problem], generator: Generator, task: Task, verifier: Verifier,
        probes: int, estimate: str,
    ) -> tuple[list, list[Config]]:
        can_continue = generator.capabilities.continuation
        return calibrate(
            split, generator, task, verifier, max_n=self.max_n, probes=probes, estimate=estimate,
            beam=self.beam and task.has_step_checker and verifier.process and can_continue,
            revise=self.revise and can_continue, options=self.options, epsilon=self.epsilon,
            seed=self.seed or 0,
        )


@STRATEGIES.register("compute-optimal")
class ComputeOptimal(Calibrated):
    """Per problem: probe, bin its estimated difficulty, run the policy's configuration
    for the bin within ``budget`` generated + verifier tokens.

    ``policy``: a JSON policy file; loaded when it exists, else fitted on the
    calibration split (``calibration`` problems per level, seed ``calib_seed``)
    and saved there. Without a path the fitted policy lives in the strategy.
    """

    name = "compute-optimal"

    def __init__(
        self,
        budget: int = 2048,
        policy: str | None = None,
        probes: int = 4,
        calibration: int = 16,
        calib_seed: int | None = None,
        calib_levels: Sequence[int] | None = None,
        max_n: int = 16,
        bins: int = 5,
        binning: str = "quantile",
        estimate: str = "verifier",
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
        self.probes = check_positive("probes", probes)
        if self.probes > self.max_n:
            raise ValueError(f"probes ({probes}) must be <= max_n ({max_n})")
        self.bins = check_positive("bins", bins)
        self.binning, self.estimate = check_binning(binning), check_estimate(estimate)
        self.policy_path = Path(policy) if policy else None
        self.loaded = Policy.load(self.policy_path) if self.policy_path and self.policy_path.exists() else None
        if self.loaded is not None:
            self.loaded.config_for(0, self.budget)  # refuses a budget below the fitted ones now
        self.fitted: dict[str, Policy] = {}

    def state_identity(self) -> str | None:
        # the loaded policy's content, not its path: a refitted file at the same path
        # must not resume to results computed with the old policy
        return None if self.loaded is None else fingerprint(asdict(self.loaded))

    def labels(self, verifier: Verifier | None) -> str:
        estimate = self.loaded.estimate if self.loaded is not None else self.estimate
        oracle = verifier is not None and verifier.reads_labels
        return labels_tag((["gold-difficulty"] if estimate == "oracle" else [])
                          + (["oracle-verifier"] if oracle else []))

    def check(self, task: Task, generator: Generator, verifier: Verifier | None) -> None:
        super().check(task, generator, verifier)
        assert verifier is not None
        if self.loaded is not None and self.loaded.verifier != verifier.name:
            raise ValueError(
                f"policy {self.policy_path} was fitted with verifier {self.loaded.verifier!r}, "
                f"not {verifier.name!r}; the optimal choice depends on the verifier (refit it)"
            )

    def policy_for(
        self, problems: Sequence[Problem], generator: Generator, task: Task, verifier: Verifier
    ) -> Policy:
        if self.loaded is not None:
            return self.loaded
        if verifier.name not in self.fitted:  # reward-aware: one policy per verifier
            split = self.calibration_split(task, problems)
            records, configs = self.measure(split, generator, task, verifier, self.probes, self.estimate)
            policy = fit_policy(records, configs, [self.budget], verifier=verifier.name,
                                estimate=self.estimate, probes=self.probes,
                                binning=self.binning, bins=self.bins)
            policy.meta.update({"calib_seed": self.calib_seed, "levels": self.calib_levels or list(task.levels)})
            if self.policy_path is not None:
                policy.save(self.policy_path)
            self.fitted[verifier.name] = policy
        return self.fitted[verifier.name]

    def solve(
        self, problems: Sequence[Problem], generator: Generator, task: Task, verifier: Verifier | None = None
    ) -> list[ProblemResult]:
        self.check(task, generator, verifier)
        assert verifier is not None
        self.policy_for(problems, generator, task, verifier)  # the overlap check before solving
        return super().solve(problems, generator, task, verifier)

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        assert verifier is not None
        policy = self.policy_for([problem], generator, task, verifier)
        compute = Compute()
        aggregation = self.options["aggregation"]
        probes = pool_sampler(self.options, self.seed).sample_pool(problem, generator, task, policy.probes, compute)
        score_candidates(probes, problem, verifier, compute, aggregation)
        est = difficulty_estimate(probes, problem, task, policy.estimate)
        bin_index = assign_bin(est, policy.edges)
        config = policy.config_for(bin_index, self.budget)
        meta: dict[str, Any] = {"bin": bin_index, "estimate": est, "config": config.name,
                                "budget": self.budget, "probe_tokens": tokens(compute)}
        if config.method in ("beam", "revise"):
            result = config.build(self.options).solve_one(problem, generator, task, verifier)
            meta.update(result.meta)
            return ProblemResult(problem.id, result.answer, probes + result.candidates,
                                 compute + result.compute, meta=meta)
        pool = probes + self._extra_samples(problem, generator, task, verifier, config, probes, compute)
        selector = config.build(self.options)
        assert isinstance(selector, PoolStrategy)
        answer, details = selector.select(pool, problem, task)
        meta.update(details, samples=len(pool))
        return ProblemResult(problem.id, answer, pool, compute, meta=meta)

    def _extra_samples(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier,
        config: Config, probes: Sequence[Candidate], compute: Compute,
    ) -> list[Candidate]:
        """Up to n − probes more samples, as many as the remaining budget affords at the
        probes' cost per sample, each capped so generation alone cannot overrun it."""
        wanted = config.n - len(probes)
        left = self.budget - tokens(compute)
        per_sample = (compute.generated_tokens + (compute.verifier_tokens if config.uses_verifier else 0)) / len(probes)
        if per_sample > 0:
            wanted = min(wanted, int(left // per_sample))
        if wanted <= 0:
            return []
        cap = min(self.options["max_tokens"], left // wanted)
        if cap < 1:
            return []
        extra = pool_sampler({**self.options, "max_tokens": cap}, derive_seed(self.seed, "extra"))
        more = extra.sample_pool(problem, generator, task, wanted, compute)
        if config.uses_verifier:
            score_candidates(more, problem, verifier, compute, self.options["aggregation"])
        return more
