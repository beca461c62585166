"""Step-wise expansion machinery shared by beam search, DVTS and (R2-)MCTS.

A partial solution is a :class:`~testtime.scale.base.Candidate` whose text is
whole steps, each ending in ``STEP_DELIMITER``. Extending it is one more
completions call on ``problem.prompt + partial`` with the delimiter as the stop
string, so it works over any backend with raw-text continuation. A path is
*complete* when the model ends it (EOS), hits the length limit, writes the
``answer:`` line or writes an empty step (Snell et al., 2024, §5).
"""

from __future__ import annotations

from collections.abc import Sequence

from testtime.backends.base import Completion, Generator, SamplingParams
from testtime.scale.base import Candidate, Compute, Strategy
from testtime.scale.common import (
    best_scored,
    candidate_score,
    check_aggregation,
    check_positive,
    derive_seed,
    score_candidates,
    vote,
)
from testtime.tasks.base import ANSWER_PREFIX, STEP_DELIMITER, Problem, Task
from testtime.verifiers.base import Verifier

SELECTIONS = ("score", "vote")


def is_complete(path: Candidate) -> bool:
    return bool(path.meta.get("complete"))


class StepExpander:
    """Extends partial solutions of one problem by one step (or to the end),
    charging every generated and verifier token to ``compute``.

    ``context`` is text placed before the problem prompt (retrieved examples in
    R2-MCTS, which may vary it per path through :meth:`context_for`); it is charged
    as prompt tokens like the rest of the prompt.
    """

    def __init__(
        self,
        problem: Problem,
        task: Task,
        generator: Generator,
        verifier: Verifier,
        compute: Compute,
        *,
        step_tokens: int,
        max_tokens: int,
        aggregation: str = "last",
        seed: int | None = None,
        context: str = "",
    ) -> None:
        self.problem = problem
        self.task = task
        self.generator = generator
        self.verifier = verifier
        self.compute = compute
        self.step_tokens = step_tokens
        self.max_tokens = max_tokens
        self.aggregation = aggregation
        self.seed = seed if generator.capabilities.seed else None
        self.context = context
        self._calls = 0

    def extend(
        self,
        paths: Sequence[Candidate],
        n: int,
        temperature: float,
        *,
        to_end: bool = False,
    ) -> list[list[Candidate]]:
        """``n`` children of every path: one more step each, or the rest of the
        solution when ``to_end``. ``result[i]`` are the children of ``paths[i]``."""
        if not paths:
            return []
        self._calls += 1
        params = SamplingParams(
            n=n,
            temperature=temperature,
            max_tokens=self.max_tokens if to_end else self.step_tokens,
            stop=() if to_end else (STEP_DELIMITER,),
            seed=derive_seed(self.seed, self.problem.id, "extend", self._calls),
        )
        prompts = [self.context_for(p) + self.problem.prompt + p.text for p in paths]
        result = self.generator.generate(prompts, params)
        self.compute.add_usage(result.usage, self.generator)
        return [
            [self._child(parent, c, to_end) for c in completions]
            for parent, completions in zip(paths, result.completions, strict=True)
        ]

    def context_for(self, path: Candidate) -> str:
        """The text placed before the prompt when extending ``path``."""
        return self.context

    def _child(self, parent: Candidate, completion: Completion, to_end: bool) -> Candidate:
        step = completion.text
        by_delimiter = completion.stop_string == STEP_DELIMITER
        if by_delimiter:
            step += STEP_DELIMITER
        line = completion.text.strip()
        complete = (
            to_end
            or not by_delimiter  # EOS or the length limit
            or not line  # an empty step ends the solution
            or line.startswith(ANSWER_PREFIX)
        )
        text = parent.text + step
        return Candidate(
            text=text,
            answer=self.task.extract_answer(text) if complete else None,
            num_tokens=parent.num_tokens + completion.num_tokens,
            finish_reason=completion.finish_reason,
            meta={"complete": complete, "depth": parent.meta.get("depth", 0) + 1},
        )

    def score(self, paths: Sequence[Candidate]) -> None:
        """PRM step scores and the aggregated score of every path (one verifier call)."""
        score_candidates(paths, self.problem, self.verifier, self.compute, self.aggregation)

    def lookahead_score(self, paths: Sequence[Candidate], k: int) -> None:
        """Score incomplete paths by rolling ``k`` more steps at T = 0 and scoring the
        rolled prefix (Snell et al. §5); only the path itself is kept. The rollout
        tokens are charged to compute, not to the paths. Complete paths are scored as is."""
        rolled = list(paths)
        for _ in range(k):
            open_idx = [i for i, p in enumerate(rolled) if not is_complete(p)]
            if not open_idx:
                break
            children = self.extend([rolled[i] for i in open_idx], 1, 0.0)
            for i, kids in zip(open_idx, children, strict=True):
                rolled[i] = kids[0]
        self.score(rolled)
        for path, roll in zip(paths, rolled, strict=True):
            if roll is not path:
                path.score = roll.score
                path.meta["lookahead_step_scores"] = roll.step_scores


def choose_answer(
    finished: Sequence[Candidate], problem: Problem, task: Task, select: str, aggregation: str
) -> tuple[str | None, dict]:
    """The final answer over complete paths: highest aggregated score, or the
    verifier-weighted vote (spec §2, step 5)."""
    if select == "vote":
        weights = [candidate_score(c, aggregation) for c in finished]
        answer, tally = vote(finished, problem, task, weights)
        return answer, {"weighted_votes": tally}
    best = best_scored(finished, aggregation)
    if best is None:
        return None, {}
    return best.answer, {"score": candidate_score(best, aggregation)}


class StepSearchStrategy(Strategy):
    """Common options and checks of PRM-guided step-wise search."""

    requires = ("continuation",)
    needs_verifier = True
    needs_step_verifier = True

    def __init__(
        self,
        n: int,
        temperature: float,
        step_tokens: int,
        max_tokens: int,
        max_steps: int,
        aggregation: str,
        select: str,
        seed: int | None,
    ) -> None:
        self.n = check_positive("n", n)
        self.max_steps = check_positive("max_steps", max_steps)
        self.step_tokens = check_positive("step_tokens", step_tokens)
        self.max_tokens = check_positive("max_tokens", max_tokens)
        SamplingParams(temperature=temperature)
        self.temperature = temperature
        self.aggregation = check_aggregation(aggregation)
        if select not in SELECTIONS:
            raise ValueError(f"unknown selection {select!r}; valid: {', '.join(SELECTIONS)}")
        self.select = select
        self.seed = seed

    def expander(
        self,
        problem: Problem,
        task: Task,
        generator: Generator,
        verifier: Verifier | None,
        compute: Compute,
        context: str = "",
    ) -> StepExpander:
        assert verifier is not None  # check() refused a missing verifier
        return StepExpander(
            problem,
            task,
            generator,
            verifier,
            compute,
            step_tokens=self.step_tokens,
            max_tokens=self.max_tokens,
            aggregation=self.aggregation,
            seed=self.seed,
            context=context,
        )
