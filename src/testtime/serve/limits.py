"""Server limits, and a request's cost estimated and checked before any work.

The estimate is an upper bound on the tokens the request may make the upstream
generate: prompts × choices × the strategy's per-problem bound (:data:`BOUNDS`,
from its options: samples × ``max_tokens`` for sampling strategies, turns ×
chains for self-refinement, the thinking budget for budget forcing, ...). It is
checked against :attr:`Limits.max_request_tokens`; prompt count and size, the
``max_tokens`` asked for and the model's context window are checked too. A
request over a limit gets a 400 (413 for size) naming the number and the flag.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testtime.serve.errors import APIError
from testtime.serve.routing import Plan, strategy_params


@dataclass(frozen=True)
class Limits:
    """What one request (and one connection) may cost; every field is a CLI flag."""

    max_body_bytes: int = 1 << 20
    max_prompts: int = 64  # prompts x choices per request
    max_prompt_chars: int = 32_768
    max_tokens: int = 4096  # the largest max_tokens a request may ask for
    max_n: int = 256  # the largest sample budget n
    max_request_tokens: int = 1 << 20  # estimated generated tokens per request
    max_concurrency_per_key: int = 16
    request_timeout_s: float = 600.0  # wall time of a request's work (then 504, work stopped)
    # HTTP: a request's head and body must arrive within these (slowloris, stalled
    # bodies); heads larger than max_header_bytes are refused; connections beyond
    # max_connections are answered 503.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    max_header_bytes: int = 32 * 1024
    max_connections: int = 512
    keep_alive_s: float = 5.0

    def __post_init__(self) -> None:
        for key, value in self.__dict__.items():
            if not value > 0:
                raise ValueError(f"limit {key} must be > 0, got {value}")


def _sequential(o: dict[str, Any]) -> int:
    """One budget-forced attempt: the thinking budget plus the forced answer."""
    return o["budget"] + o["answer_tokens"]


def _refine(o: dict[str, Any]) -> int:
    attempt = o["max_tokens"] if o.get("budget") is None else _sequential(o)
    return o["n"] * o["turns"] * attempt


_LEVELS = 5  # difficulty levels calibrated by default: at most 5 (arith) in the shipped tasks


def _calibrated(o: dict[str, Any]) -> int:
    # Without a fitted policy the strategy first calibrates: every calibration
    # problem of every level sampled up to max_n times.
    policy = o.get("policy")
    fitted = isinstance(policy, str) and Path(policy).is_file()
    levels = len(o["calib_levels"]) if o.get("calib_levels") else _LEVELS
    calibration = 0 if fitted else levels * o["calibration"] * o["max_n"] * o["max_tokens"]
    return o["budget"] + calibration


def _samples(o: dict[str, Any]) -> int:
    return o["n"] * o["max_tokens"]


# Per-problem generated-token bound of each strategy, from its (defaulted) options.
BOUNDS: dict[str, Callable[[dict[str, Any]], int]] = {
    "sample": lambda o: o["max_tokens"],
    "greedy": lambda o: o["max_tokens"],
    "majority": _samples,
    "best-of-n": _samples,
    "weighted-majority": _samples,
    "rpc": _samples,
    "ffs": _samples,
    "beam": lambda o: _samples(o) * (1 + o["lookahead"]),
    "dvts": lambda o: _samples(o) * (1 + o["lookahead"]),
    "mcts": lambda o: o["n"] * o["branching"] * o["step_tokens"],
    "r2-mcts": lambda o: o["n"] * o["branching"] * o["step_tokens"],
    "qalign": lambda o: o["n"] * o["chains"] * o["max_tokens"],
    "budget-forcing": _sequential,
    # Every checkpoint may end in a forced answer: at most log2(budget/initial)+1 of them.
    "iterative-deepening": lambda o: o["budget"] + o["answer_tokens"] * (o["budget"] // max(o["initial"], 1) + 1).bit_length(),
    "self-refine": _refine,
    "scaling-3d": _refine,
    "compute-optimal": _calibrated,
    "agent-tts": _calibrated,
}


def _options(plan: Plan) -> dict[str, Any]:
    params = strategy_params(plan.strategy) or {}
    out = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    return {**out, **plan.options, **plan.paths}


def estimate_tokens(plan: Plan, problems: int) -> int:
    """Upper bound of the tokens ``problems`` runs of ``plan`` may generate."""
    bound = BOUNDS.get(plan.strategy)
    if bound is None:  # a strategy registered after this table: its budget x max_tokens
        opts = _options(plan)
        per = int(opts.get("n", 1) or 1) * int(opts.get("max_tokens", 256) or 256)
    else:
        try:
            per = int(bound(_options(plan)))
        except (KeyError, TypeError, ArithmeticError) as err:
            raise APIError(400, f"cannot bound the cost of {plan.strategy!r}: {err}") from None
    return problems * max(per, 1)


def check_request(
    limits: Limits,
    plan: Plan,
    prompts: Sequence[str],
    choices: int,
    count_tokens: Callable[[str], int],
    context: int | None,
) -> int:
    """Refuse a request over a limit before any work; returns its token estimate."""
    total = len(prompts) * choices
    if total > limits.max_prompts:
        raise APIError(
            400,
            f"{len(prompts)} prompts x n={choices} = {total} runs exceeds this server's limit of "
            f"{limits.max_prompts} per request (--max-prompts)",
            code="too_many_prompts",
        )
    for i, prompt in enumerate(prompts):
        if len(prompt) > limits.max_prompt_chars:
            raise APIError(
                413,
                f"prompt {i} has {len(prompt)} characters; this server's limit is "
                f"{limits.max_prompt_chars} (--max-prompt-chars)",
                code="prompt_too_long",
            )
        if context is not None and (size := count_tokens(prompt)) >= context:
            raise APIError(
                400,
                f"prompt {i} has {size} tokens; the model's context is {context} tokens",
                code="context_length_exceeded",
            )
    asked = plan.options.get("max_tokens")
    if isinstance(asked, int) and asked > limits.max_tokens:
        raise APIError(
            400,
            f"max_tokens={asked} exceeds this server's limit of {limits.max_tokens} (--max-tokens)",
            code="max_tokens_too_large",
            param="max_tokens",
        )
    estimate = estimate_tokens(plan, total)
    if estimate > limits.max_request_tokens:
        raise APIError(
            400,
            f"this request may generate up to {estimate:,} tokens ({total} run(s) of "
            f"{plan.strategy} with {plan.options}); this server's limit is "
            f"{limits.max_request_tokens:,} per request (--max-request-tokens): "
            "lower n, the budget, max_tokens or the number of prompts",
            code="request_too_expensive",
        )
    return estimate
