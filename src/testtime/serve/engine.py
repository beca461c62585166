"""Running one request's strategy against the shared upstream generator.

Strategies are synchronous library code, so each request runs on a worker
thread. The generator and verifier a strategy sees are per-request proxies
(:mod:`testtime.serve.guarded`): cancellable, and taking fair turns on an
in-process model.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace

from testtime.backends.base import BackendError, CancelToken, Generator, Usage
from testtime.registry import UnknownName
from testtime.scale.base import Compute, ProblemResult, Strategy
from testtime.scale.common import split_usage
from testtime.scale.sample import Sample
from testtime.serve.errors import APIError, Redactor, upstream_error
from testtime.serve.guarded import FairGate, RequestCancelled, request_views
from testtime.serve.options import Resources
from testtime.serve.outcome import Outcome, build_outcome
from testtime.serve.routing import Plan, build_strategy
from testtime.tasks.base import STEP_DELIMITER, Problem, Task
from testtime.tasks.freeform import FreeformTask
from testtime.tasks.synthetic import SyntheticTask
from testtime.verifiers.base import Verifier

FREEFORM = "freeform"
log = logging.getLogger("testtime.serve")


def _compute(usage: Usage, generator: Generator) -> Compute:
    compute = Compute()
    compute.add_usage(usage, generator)
    return compute


class Engine:
    """Builds strategies, tasks and verifiers for requests and runs them on worker threads.

    ``serialize=True`` makes model and verifier calls take turns, one at a time,
    round-robin over API keys (in-process models whose samplers are not made for
    concurrent callers); ``default_verifier`` is
    used by strategies that need one when a request names none.
    """

    def __init__(
        self,
        generator: Generator,
        *,
        redact: Redactor,
        default_verifier: str | None = None,
        serialize: bool = False,
        max_workers: int = 64,
        resources: Resources | None = None,
    ) -> None:
        self.generator = generator
        self.redact = redact
        self.resources = resources or Resources()
        self.default_verifier = default_verifier
        self.executor = ThreadPoolExecutor(max_workers, thread_name_prefix="testtime-serve")
        self.gate = FairGate() if serialize else None
        self._cache_lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._verifiers: dict[tuple[str, str], Verifier] = {}

    def task(self, name: str | None) -> Task:
        from testtime.tasks import SYNTHETIC_TASKS, get_task

        name = name or FREEFORM
        valid = (FREEFORM, *SYNTHETIC_TASKS)  # never a file path: that would read server files
        if name not in valid:
            raise APIError(
                400, f"unknown task {name!r}; valid: {', '.join(valid)}", param="testtime.task"
            )
        with self._cache_lock:
            if name not in self._tasks:
                self._tasks[name] = FreeformTask() if name == FREEFORM else get_task(name)
            return self._tasks[name]

    def verifier(self, name: str | None, strategy: Strategy, task: Task) -> Verifier | None:
        from testtime.verifiers.base import get_verifier

        if name is None:
            if not strategy.needs_verifier or self.default_verifier is None:
                return None
            name = self.default_verifier
        with self._cache_lock:
            key = (name, task.name)
            if key not in self._verifiers:
                try:
                    self._verifiers[key] = get_verifier(name, task)
                except (UnknownName, ValueError, TypeError, FileNotFoundError) as err:
                    hint = ""
                    if task.name == FREEFORM and name == "oracle":
                        hint = (
                            " (the oracle checks steps against a synthetic task's gold answer: "
                            'send "testtime": {"task": "arith"} (or countdown, mul) with a '
                            "prompt of that task; it is an upper bound, not label-free)"
                        )
                    raise APIError(
                        400,
                        f"verifier {name!r}: {err}{hint}",
                        code="invalid_verifier",
                        param="testtime.verifier",
                    ) from None
            return self._verifiers[key]

    @staticmethod
    def _check_prompts(task: Task, problems: list[Problem]) -> None:
        """A synthetic task's prompts must be problems of that task (its checker parses them)."""
        if not isinstance(task, SyntheticTask):
            return
        for i, problem in enumerate(problems):
            try:
                task.derive(problem)
            except ValueError as err:
                example = task.generate(1, task.levels[0], 0)[0].prompt
                raise APIError(
                    400,
                    f"prompt {i} is not a {task.name!r} problem ({err}); e.g. {example!r}",
                    code="invalid_prompt",
                    param="testtime.task",
                ) from None

    def run(
        self,
        plan: Plan,
        prompts: Sequence[str],
        cancel: CancelToken,
        key: str = "anonymous",
        choices: int = 1,
    ) -> Outcome:
        """Solve every prompt with the plan's strategy for API key ``key``, ``choices``
        independent runs each (blocking; call on a worker thread)."""
        with ExitStack() as held:
            # One request at a time per resource file (a bank grows, a policy is fitted):
            # held from loading it in the constructor to saving it.
            for lock in self.resources.locks(plan.paths.values()):
                held.enter_context(lock)
            return self._run(plan, prompts, cancel, key, choices)

    def _run(
        self, plan: Plan, prompts: Sequence[str], cancel: CancelToken, key: str, choices: int
    ) -> Outcome:
        try:
            strategy = build_strategy(plan)
        except APIError as err:  # a resource file's error names the resource, not its path
            err.message = self.redact.public(err.message)
            raise
        task = self.task(plan.task)
        shared = self.verifier(plan.verifier, strategy, task)
        generator, verifier = request_views(
            self.generator, shared, gate=self.gate, key=key, cancel=cancel
        )
        if plan.experts is not None:  # refused before any generation: dense model, bad count
            from testtime.backends.experts import with_experts

            try:
                generator = with_experts(generator, plan.experts)
            except ValueError as err:
                raise APIError(400, self.redact.public(str(err)), code="invalid_option",
                               param="testtime.experts") from None
        problems = [
            Problem(
                id=f"prompt-{i}",
                prompt=p if p.endswith(STEP_DELIMITER) else p + STEP_DELIMITER,
                answer="",
                task=task.name,
            )
            for i, p in enumerate(prompts)
        ]
        self._check_prompts(task, problems)
        try:
            strategy.check(task, generator, verifier)
        except (ValueError, BackendError) as err:
            raise APIError(400, self.redact.public(str(err)), code="invalid_strategy") from None
        try:
            results = self._choices(plan, strategy, problems, generator, task, verifier, choices)
        except (RequestCancelled, APIError):
            raise
        except ValueError as err:
            if isinstance(err, json.JSONDecodeError):  # garbage from the upstream
                raise upstream_error(
                    BackendError(f"malformed upstream reply: {err}"), self.redact
                ) from None
            raise APIError(400, self.redact.public(str(err)), code="invalid_request") from None
        except Exception as err:
            mapped = upstream_error(err, self.redact)
            if mapped.status == 500:  # a bug, not an upstream fault: keep the traceback
                trace = "".join(traceback.format_exception(err))
                log.error("request failed:\n%s", self.redact(trace))
            raise mapped from None
        asked = [p for p in problems for _ in range(choices)]
        return build_outcome(plan, strategy, verifier, task, asked, results)

    def _choices(
        self,
        plan: Plan,
        strategy: Strategy,
        problems: list[Problem],
        generator: Generator,
        task: Task,
        verifier: Verifier | None,
        choices: int,
    ) -> list[ProblemResult]:
        """``choices`` independent results per problem, prompt-major (OpenAI's ``n``)."""
        if choices == 1:
            return strategy.solve(problems, generator, task, verifier)
        if isinstance(strategy, Sample):  # n plain samples: one batched call, like majority-n
            return [
                ProblemResult(problem.id, cand.answer, [cand], _compute(share, generator))
                for problem, (pool, used) in zip(
                    problems, strategy.sample_pools(problems, generator, task, choices), strict=True
                )
                for cand, share in zip(pool, split_usage(used, [problem.prompt] * len(pool),
                                                         [[c] for c in pool]), strict=True)
            ]
        seed = plan.options.get("seed")
        if seed is None:  # unseeded: copies of a problem are independent runs already
            copies = [replace(p, id=f"{p.id}.{j}") for p in problems for j in range(choices)]
            return strategy.solve(copies, generator, task, verifier)
        # Seeded: run j uses seed + j (the same seed would repeat the same samples).
        runs = [strategy] + [
            build_strategy(replace(plan, options={**plan.options, "seed": seed + j}))
            for j in range(1, choices)
        ]
        per_run = [run.solve(problems, generator, task, verifier) for run in runs]
        return [per_run[j][i] for i in range(len(problems)) for j in range(choices)]
