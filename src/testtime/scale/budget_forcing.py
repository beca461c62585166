"""Budget forcing (Muennighoff et al., 2025, "s1: Simple test-time scaling"; spec §6).

Thinking is everything before the ``answer:`` line. Generate until the model
starts ``answer:`` (a stop string) or the thinking budget B runs out. While
budget remains and fewer than W extensions were made, suppress the end of
thinking by appending the wait cue — the embedded TinyReasoner then re-derives
the solution — and continue. When thinking ends (W extensions used, or the
budget spent), force ``answer:`` and decode the answer line right where
thinking stopped — after a cut partial derivation too, as s1 does.
``truncate_cut=True`` (off by default; not in s1 or m1) instead drops a cut
re-derivation and forces the answer after the last derivation the model
finished (its tokens still count): a model that answers only at the end of a
derivation (TinyReasoner) guesses after a cut one.

The helpers here are shared by iterative deepening, self-refinement and
3-D scaling; they run a batch of independent attempts in lock-step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from testtime.backends.base import Generator, SamplingParams
from testtime.scale.base import STRATEGIES, Candidate, Compute, ProblemResult, Strategy
from testtime.scale.common import check_positive, derive_seed
from testtime.tasks.base import ANSWER_PREFIX, STEP_DELIMITER, WAIT_CUE, Problem, Task
from testtime.verifiers.base import Verifier


@dataclass
class Attempt:
    """One attempt's text (after its prefix) and how it was produced."""

    text: str = ""
    thinking_tokens: int = 0  # generated thinking plus the wait cues (they count to B)
    tokens: int = 0  # all generated tokens, the forced answer included
    extensions: int = 0  # wait cues appended
    cut: bool = False  # thinking was cut by the budget (not ended by the model)
    last_end: int | None = None  # len(text) where the model last ended a derivation itself


class Continuer:
    """Continues many texts of one problem by one call per distinct token limit,
    charging usage to ``compute`` and deriving a fresh seed for every call."""

    def __init__(
        self,
        generator: Generator,
        problem: Problem,
        compute: Compute,
        temperature: float,
        seed: int | None,
    ) -> None:
        self.generator = generator
        self.problem = problem
        self.compute = compute
        self.temperature = temperature
        self.seed = seed if generator.capabilities.seed else None
        self._calls = 0
        try:
            self.cue_tokens = max(generator.count_tokens(WAIT_CUE), 1)
        except NotImplementedError:
            self.cue_tokens = 1

    def __call__(
        self, texts: Sequence[str], limits: Sequence[int], stop: tuple[str, ...]
    ) -> list[tuple[str, int, str | None]]:
        """(text, tokens, stop string or None) for each continuation of ``texts[i]``
        (a prompt suffix) with at most ``limits[i]`` new tokens."""
        out: list[tuple[str, int, str | None]] = [("", 0, None)] * len(texts)
        for limit in sorted(set(limits)):
            idx = [i for i, lim in enumerate(limits) if lim == limit]
            self._calls += 1
            params = SamplingParams(
                temperature=self.temperature,
                max_tokens=limit,
                stop=stop,
                seed=derive_seed(self.seed, self.problem.id, "continue", self._calls),
            )
            result = self.generator.generate([self.problem.prompt + texts[i] for i in idx], params)
            self.compute.add_usage(result.usage, self.generator)
            for i, completions in zip(idx, result.completions, strict=True):
                c = completions[0]
                out[i] = (c.text, c.num_tokens, c.stop_string)
        return out


def end_line(text: str) -> str:
    return text if not text or text.endswith(STEP_DELIMITER) else text + STEP_DELIMITER


def force_answers(
    cont: Continuer, prefixes: Sequence[str], attempts: Sequence[Attempt], answer_tokens: int
) -> None:
    """Append ``answer:`` to every attempt and decode the answer line."""
    texts = []
    for a in attempts:
        a.text = end_line(a.text) + ANSWER_PREFIX
        texts.append(a.text)
    outs = cont(
        [p + t for p, t in zip(prefixes, texts, strict=True)],
        [answer_tokens] * len(texts),
        (STEP_DELIMITER,),
    )
    for a, (text, tokens, _) in zip(attempts, outs, strict=True):
        a.text += text + STEP_DELIMITER
        a.tokens += tokens


def think(
    cont: Continuer,
    prefixes: Sequence[str],
    *,
    budget: int,
    waits: int | None,
    answer_tokens: int,
    truncate_cut: bool = False,
) -> list[Attempt]:
    """Budget-forced attempts continuing each prefix (``waits=None``: extend until
    the budget is spent; ``truncate_cut``: see the module docstring)."""
    attempts = [Attempt() for _ in prefixes]
    stopped = [False] * len(prefixes)
    while True:
        live = [i for i, a in enumerate(attempts) if not stopped[i] and a.thinking_tokens < budget]
        if not live:
            break
        outs = cont(
            [prefixes[i] + attempts[i].text for i in live],
            [budget - attempts[i].thinking_tokens for i in live],
            (ANSWER_PREFIX,),
        )
        for i, (text, tokens, stop) in zip(live, outs, strict=True):
            a = attempts[i]
            a.text += text
            a.thinking_tokens += tokens
            a.tokens += tokens
            if a.thinking_tokens >= budget and stop != ANSWER_PREFIX:
                a.cut = True  # the budget ran out mid-thought
                if truncate_cut and a.last_end is not None:
                    a.text = a.text[: a.last_end]  # the dropped tokens stay counted
            elif a.thinking_tokens < budget and (waits is None or a.extensions < waits):
                a.last_end = len(end_line(a.text))
                a.text = end_line(a.text) + WAIT_CUE  # "answer:" or EOS: think again
                a.extensions += 1
                a.thinking_tokens += cont.cue_tokens  # the cue is part of the thinking
            else:
                stopped[i] = True
    # The stop string withheld every model-written "answer:", so each attempt gets it here.
    force_answers(cont, prefixes, attempts, answer_tokens)
    return attempts


def attempt_candidate(attempt: Attempt, task: Task, **meta) -> Candidate:
    return Candidate(
        text=attempt.text,
        answer=task.extract_answer(attempt.text),
        num_tokens=attempt.tokens,
        meta={
            "thinking_tokens": attempt.thinking_tokens,
            "extensions": attempt.extensions,
            "cut": attempt.cut,
            **meta,
        },
    )


class SequentialStrategy(Strategy):
    requires = ("continuation",)

    def __init__(self, temperature: float, answer_tokens: int, seed: int | None) -> None:
        SamplingParams(temperature=temperature)
        self.temperature = temperature
        self.answer_tokens = check_positive("answer_tokens", answer_tokens)
        self.seed = seed

    def continuer(self, generator: Generator, problem: Problem, compute: Compute) -> Continuer:
        return Continuer(generator, problem, compute, self.temperature, self.seed)


@STRATEGIES.register("budget-forcing")
class BudgetForcing(SequentialStrategy):
    name = "budget-forcing"
    budget_param = "budget"

    def __init__(
        self,
        budget: int = 256,
        waits: int | None = 1,
        temperature: float = 0.8,
        answer_tokens: int = 16,
        truncate_cut: bool = False,
        seed: int | None = 0,
    ) -> None:
        """``budget`` thinking tokens, at most ``waits`` extensions (None: as many as fit);
        ``truncate_cut``: answer after the last finished derivation (off: as s1)."""
        super().__init__(temperature, answer_tokens, seed)
        self.truncate_cut = bool(truncate_cut)
        self.budget = check_positive("budget", budget)
        if waits is not None and waits < 0:
            raise ValueError(f"waits must be >= 0 (or None for no limit), got {waits}")
        self.waits = waits

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        compute = Compute()
        (attempt,) = think(
            self.continuer(generator, problem, compute),
            [""],
            budget=self.budget,
            waits=self.waits,
            answer_tokens=self.answer_tokens,
            truncate_cut=self.truncate_cut,
        )
        cand = attempt_candidate(attempt, task)
        return ProblemResult(problem.id, cand.answer, [cand], compute, meta=dict(cand.meta))
