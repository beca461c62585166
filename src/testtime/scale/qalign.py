"""QAlign: test-time alignment by MCMC with the QUEST proposal (Faria & Smith,
2025, "Sample, don't search"; spec §5).

Target π(y | x) ∝ p_LM(y | x) · exp(r(x, y) / β). The paper's r is a
Bradley–Terry reward model's output, a logit; a verifier score here is a
probability p = σ(logit), so by default (``reward="logit"``) r is its log-odds
log(p / (1 − p)) (p clamped to [1e-4, 1 − 1e-4], |r| <= 9.2) and β = 1 tilts on
the paper's scale. ``reward="prob"`` uses p itself: with β = 1 the tilt is at
most e and the chain is nearly the LM's own sampler (majority voting). From state y pick a cut index i ~ U{0..|y|−1}, keep y_<i and resample
the suffix from the model at temperature T → y′. Because the suffix comes from
p_LM itself, the Metropolis–Hastings ratio reduces to
α = min{1, exp((r′ − r)/β) · |y| / |y′|} (the |y| factors are the index-proposal
probabilities 1/|y′| over 1/|y|); the log ratio is clamped to ±20. The answer
is the majority vote over all chain states y_0..y_t, reported at t = powers of 2,
with the acceptance rate (``meta["acceptance_rate"]``).

The Generator is text-level, so the cut unit is a choice (``unit``):

- ``"token"`` — model tokens, via ``generator.count_tokens``: the cut is the
  longest text prefix of at most i tokens (found by bisection). Exact for
  tokenizers whose prefix tokenisation is stable, approximate for BPE merges
  across the cut.
- ``"char"`` — characters; exact when the tokenizer is character-level.
- ``"step"`` — step boundaries (line starts): exact for any tokenizer in which
  the delimiter ends a token, at coarser proposal granularity; |y| counts lines.

``"auto"`` uses tokens when the backend can count them, else steps. In every
case |y| and |y′| are measured in the same unit as the index, which keeps the
acceptance ratio exact for that proposal.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable

from testtime.backends.base import Generator, SamplingParams
from testtime.scale.base import STRATEGIES, Candidate, Compute, ProblemResult, Strategy
from testtime.scale.common import (
    check_aggregation,
    check_positive,
    derive_seed,
    sample_candidates,
    score_candidates,
    vote,
)
from testtime.tasks.base import STEP_DELIMITER, Problem, Task
from testtime.verifiers.base import Verifier

UNITS = ("auto", "token", "char", "step")
REWARDS = ("logit", "prob")
LOG_RATIO_CLAMP = 20.0
PROB_CLAMP = 1e-4


def to_reward(score: float, how: str) -> float:
    """The MCMC reward of a verifier probability: its log-odds (``logit``) or itself (``prob``)."""
    if how == "prob":
        return score
    p = min(max(score, PROB_CLAMP), 1.0 - PROB_CLAMP)
    return math.log(p / (1.0 - p))


def log_acceptance(
    reward: float, new_reward: float, length: int, new_length: int, beta: float
) -> float:
    """log α before the min with 0: (r′ − r)/β + log |y| − log |y′|, clamped to ±20."""
    log_ratio = (
        (new_reward - reward) / beta + math.log(max(length, 1)) - math.log(max(new_length, 1))
    )
    return max(-LOG_RATIO_CLAMP, min(LOG_RATIO_CLAMP, log_ratio))


def step_starts(text: str) -> list[int]:
    """Character offsets where a step (line) starts."""
    return [0] + [i + 1 for i, ch in enumerate(text) if ch == STEP_DELIMITER and i + 1 < len(text)]


class Cutter:
    """Length |y| and the prefix y_<i in one unit (see the module docstring)."""

    def __init__(self, unit: str, count_tokens: Callable[[str], int] | None) -> None:
        self.unit = unit
        self.count_tokens = count_tokens

    def length(self, text: str) -> int:
        if self.unit == "char":
            return len(text)
        if self.unit == "step":
            return len(step_starts(text)) if text else 0
        assert self.count_tokens is not None
        return self.count_tokens(text)

    def prefix(self, text: str, i: int) -> str:
        if self.unit == "char":
            return text[:i]
        if self.unit == "step":
            return text[: step_starts(text)[i]]
        assert self.count_tokens is not None
        lo, hi = 0, len(text)  # longest prefix with at most i tokens
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.count_tokens(text[:mid]) <= i:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]


def resolve_unit(unit: str, generator: Generator) -> Cutter:
    if unit in ("auto", "token"):
        try:
            generator.count_tokens("")
            return Cutter("token", generator.count_tokens)
        except NotImplementedError:
            if unit == "token":
                raise ValueError(
                    f"qalign unit 'token' needs a backend that counts tokens; {generator.name!r} "
                    "does not (use unit 'step' or 'char')"
                ) from None
    return Cutter("step" if unit == "auto" else unit, None)


@STRATEGIES.register("qalign")
class QAlign(Strategy):
    name = "qalign"
    requires = ("continuation",)
    needs_verifier = True
    reported = ("acceptance_rate",)

    def __init__(
        self,
        n: int = 64,
        beta: float = 1.0,
        reward: str = "logit",
        chains: int = 1,
        temperature: float = 1.0,
        unit: str = "auto",
        max_tokens: int = 256,
        aggregation: str = "last",
        seed: int | None = 0,
    ) -> None:
        """``n`` MCMC steps per chain (the budget), ``chains`` run in lock-step."""
        self.n = check_positive("n", n)
        self.chains = check_positive("chains", chains)
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if unit not in UNITS:
            raise ValueError(f"unknown qalign unit {unit!r}; valid: {', '.join(UNITS)}")
        if reward not in REWARDS:
            raise ValueError(f"unknown qalign reward {reward!r}; valid: {', '.join(REWARDS)}")
        self.reward = reward
        SamplingParams(temperature=temperature, max_tokens=max_tokens)
        self.beta = beta
        self.temperature = temperature
        self.unit = unit
        self.max_tokens = max_tokens
        self.aggregation = check_aggregation(aggregation)
        self.seed = seed

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        assert verifier is not None  # check() refused a missing verifier
        cutter = resolve_unit(self.unit, generator)
        compute = Compute()
        rng = random.Random(derive_seed(self.seed, problem.id, "mcmc"))  # None: unseeded
        gen_seed = self.seed if generator.capabilities.seed else None

        def sample(prefixes: list[str], step: int) -> list[Candidate]:
            out = []
            for j, prefix in enumerate(prefixes):
                params = SamplingParams(
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    seed=derive_seed(gen_seed, problem.id, step, j),
                )
                out += sample_candidates(generator, problem, task, params, compute, prefix=prefix)
            score_candidates(out, problem, verifier, compute, self.aggregation)
            return out

        states = sample([""] * self.chains, 0)
        lengths = [cutter.length(s.text) for s in states]
        history = list(states)  # every chain state y_0..y_t (rejections repeat the state)
        report, accepted = {}, 0
        for t in range(1, self.n + 1):
            cuts = [rng.randrange(max(length, 1)) for length in lengths]
            proposals = sample(
                [cutter.prefix(s.text, i) for s, i in zip(states, cuts, strict=True)], t
            )
            for c, prop in enumerate(proposals):
                new_length = cutter.length(prop.text)
                log_a = log_acceptance(
                    to_reward(states[c].score or 0.0, self.reward),
                    to_reward(prop.score or 0.0, self.reward),
                    lengths[c], new_length, self.beta,
                )
                if log_a >= 0 or rng.random() < math.exp(log_a):
                    states[c], lengths[c] = prop, new_length
                    accepted += 1
            history.extend(states)
            if t & (t - 1) == 0:  # a power of two
                answer, _ = vote(history, problem, task)
                report[t] = {
                    "answer": answer,
                    "generated_tokens": compute.generated_tokens,
                    "verifier_tokens": compute.verifier_tokens,
                }
        answer, tally = vote(history, problem, task)
        visits = Counter(s.text for s in history)
        candidates = list({s.text: s for s in history}.values())  # one per distinct state
        for cand in candidates:
            cand.meta["visits"] = visits[cand.text]
        meta = {
            "votes": tally,
            "by_steps": report,
            "acceptance_rate": accepted / (self.n * self.chains),
            "unit": cutter.unit,
            "reward": self.reward,
        }
        return ProblemResult(problem.id, answer, candidates, compute, meta=meta)
