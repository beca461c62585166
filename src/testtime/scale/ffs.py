"""First Finish Search (Agarwal et al., 2025; spec §3): launch n samples, return the
first one that finishes, and really stop generating the others.

* ``sync``: one lock-step batch of n samples; the first sample to reach EOS (the
  shortest) wins and the batch is cancelled at that decoding step.
* ``async``: n concurrent single-sample requests; the first to finish (wall-clock)
  wins and the others are cancelled.

Cancelled samples' tokens are charged: the backends count them in their usage.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import reduce

from testtime.backends.base import CancelToken, Completion, Generator, SamplingParams
from testtime.scale.base import STRATEGIES, Candidate, Compute, ProblemResult, Strategy
from testtime.scale.common import check_positive, derive_seed, sample_candidates
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier

MODES = ("sync", "async")


class _FirstFinish:
    """Remembers the first sample to finish with EOS and cancels the rest."""

    def __init__(self, cancel: CancelToken) -> None:
        self._lock = threading.Lock()
        self._cancel = cancel
        self.winner: int | None = None

    def offer(self, index: int, completion: Completion) -> None:
        # A sample cut by max_tokens has not *finished* its reasoning; keep waiting.
        if completion.finish_reason != "stop":
            return
        with self._lock:
            if self.winner is None:
                self.winner = index
                self._cancel.cancel()


@STRATEGIES.register("ffs")
class FirstFinishSearch(Strategy):
    name = "ffs"
    requires = ("cancellation",)

    def __init__(
        self,
        n: int = 8,
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_tokens: int = 256,
        seed: int | None = 0,
        mode: str = "sync",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown ffs mode {mode!r}; valid: {', '.join(MODES)}")
        self.n = check_positive("n", n)
        SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
        self.temperature, self.top_p, self.max_tokens = temperature, top_p, max_tokens
        self.seed = seed
        self.mode = mode

    def _params(self, n: int, seed: int | None) -> SamplingParams:
        return SamplingParams(
            n=n, temperature=self.temperature, top_p=self.top_p,
            max_tokens=self.max_tokens, seed=seed,
        )

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        seeded = generator.capabilities.seed and self.seed is not None
        cancel = CancelToken()
        first = _FirstFinish(cancel)
        if self.mode == "sync":
            compute = Compute()
            seed = derive_seed(self.seed, problem.id) if seeded else None
            candidates = sample_candidates(
                generator, problem, task, self._params(self.n, seed), compute,
                cancel=cancel, on_finish=lambda _p, i, c: first.offer(i, c),
            )
        else:
            computes = [Compute() for _ in range(self.n)]

            def worker(j: int) -> Candidate:
                seed = derive_seed(self.seed, problem.id, j) if seeded else None
                return sample_candidates(
                    generator, problem, task, self._params(1, seed), computes[j],
                    cancel=cancel, on_finish=lambda _p, _i, c: first.offer(j, c),
                )[0]

            with ThreadPoolExecutor(max_workers=self.n) as pool:
                candidates = list(pool.map(worker, range(self.n)))
            compute = reduce(Compute.__add__, computes)
        winner = first.winner
        if winner is None:
            # Nobody reached EOS (all hit max_tokens): take the shortest attempt.
            winner = min(range(len(candidates)), key=lambda i: candidates[i].num_tokens)
        cancelled = sum(c.finish_reason == "cancelled" for c in candidates)
        meta = {"winner": winner, "cancelled": cancelled, "mode": self.mode}
        return ProblemResult(problem.id, candidates[winner].answer, candidates, compute, meta=meta)
