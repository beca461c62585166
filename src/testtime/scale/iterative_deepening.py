"""Iterative deepening sampling (Chen et al., 2025; spec §6).

Thinking runs against geometrically growing checkpoints b_0, b_1 = c·b_0,
b_2 = c·b_1, ... (cumulative thinking tokens). A derivation that ends (the model
starts ``answer:``) before the next checkpoint is answered; one still running at
the checkpoint is interrupted by the fixed self-reflection trigger (the wait cue,
after which TinyReasoner re-derives the solution) and gets until the next,
larger checkpoint. The trigger lands at a step boundary: a checkpoint reached
mid-line lets the model finish that line first (at most ``step_tokens``, within
the budget; the tokens count), so a reflection never splits a step. At the
total budget the answer is forced.
"""

from __future__ import annotations

import math

from testtime.backends.base import Generator
from testtime.scale.base import STRATEGIES, Compute, ProblemResult
from testtime.scale.budget_forcing import (
    Attempt,
    SequentialStrategy,
    attempt_candidate,
    end_line,
    force_answers,
)
from testtime.scale.common import check_positive
from testtime.tasks.base import ANSWER_PREFIX, STEP_DELIMITER, WAIT_CUE, Problem, Task
from testtime.verifiers.base import Verifier


@STRATEGIES.register("iterative-deepening")
class IterativeDeepening(SequentialStrategy):
    name = "iterative-deepening"
    budget_param = "budget"

    def __init__(
        self,
        budget: int = 512,
        initial: int = 32,
        growth: float = 2.0,
        step_tokens: int = 64,
        temperature: float = 0.8,
        answer_tokens: int = 16,
        seed: int | None = 0,
    ) -> None:
        """``budget`` total thinking tokens; first checkpoint ``initial``; factor ``growth``;
        ``step_tokens``: the most a line cut by a checkpoint may take to finish."""
        super().__init__(temperature, answer_tokens, seed)
        self.step_tokens = check_positive("step_tokens", step_tokens)
        self.budget = check_positive("budget", budget)
        self.initial = check_positive("initial", initial)
        if not growth > 1:
            raise ValueError(f"growth must be > 1, got {growth}")
        self.growth = growth

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        compute = Compute()
        cont = self.continuer(generator, problem, compute)
        attempt, checkpoint, checkpoints = Attempt(), self.initial, []
        while True:
            if attempt.thinking_tokens >= self.budget:
                attempt.cut = True
                break
            while checkpoint <= attempt.thinking_tokens:  # a checkpoint the cue already passed
                checkpoint = math.ceil(checkpoint * self.growth)
            limit = min(checkpoint, self.budget) - attempt.thinking_tokens
            ((text, tokens, stop),) = cont([attempt.text], [limit], (ANSWER_PREFIX,))
            attempt.text += text
            attempt.thinking_tokens += tokens
            attempt.tokens += tokens
            if stop == ANSWER_PREFIX or tokens < limit:  # the derivation ended (or EOS)
                break
            if attempt.thinking_tokens >= self.budget:
                attempt.cut = True
                break
            if attempt.text and not attempt.text.endswith(STEP_DELIMITER):  # finish the step
                limit = min(self.step_tokens, self.budget - attempt.thinking_tokens)
                ((text, tokens, stop),) = cont([attempt.text], [limit], (STEP_DELIMITER, ANSWER_PREFIX))
                attempt.text += text
                attempt.thinking_tokens += tokens
                attempt.tokens += tokens
                if stop == ANSWER_PREFIX or (stop is None and tokens < limit):  # answered or EOS
                    break
                if stop is None:  # the line did not end within the limit
                    attempt.cut = attempt.thinking_tokens >= self.budget
                    if attempt.cut:
                        break
            checkpoints.append(attempt.thinking_tokens)
            attempt.text = end_line(attempt.text) + WAIT_CUE
            attempt.extensions += 1
            attempt.thinking_tokens += cont.cue_tokens
        force_answers(cont, [""], [attempt], self.answer_tokens)
        cand = attempt_candidate(attempt, task, checkpoints=checkpoints)
        return ProblemResult(problem.id, cand.answer, [cand], compute, meta=dict(cand.meta))
