"""Which test-time strategy a request asks for.

Two ways, combinable, with the library's names and options (``get_strategy``):

* the model name: ``<strategy>-<k>/<model>`` sets the strategy's budget
  (``Strategy.budget_param``, as in the scaling harness: ``majority-16/tiny-reasoner``
  = 16 samples, ``best-of-8/...`` for ``best-of-n``, ``self-refine-3`` = 3 turns,
  ``budget-forcing-256`` = a 256-token thinking budget), ``<strategy>-<M>x<N>/<model>``
  (``beam-4x16``: beam width M, budget N), ``<strategy>/<model>`` (the strategy's
  defaults); the plain model name is one sample (strategy ``sample``);
* a ``testtime`` object in the body (``extra_body={"testtime": {...}}`` in the
  OpenAI client): ``strategy``, ``verifier``, ``task`` and any strategy option
  (``n``, ``aggregation``, ``mode``...). ``strategy``, ``verifier`` and ``task`` are
  also accepted as top-level fields. Explicit ``testtime`` options win over the
  model-name prefix; a different ``strategy`` in both is an error.

The request's ``temperature``, ``top_p``, ``max_tokens`` and ``seed`` are passed
to strategies that take them; a request without ``seed`` samples unseeded.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from testtime.registry import UnknownName
from testtime.scale.base import STRATEGIES
from testtime.serve.errors import APIError
from testtime.serve.options import Resources, check_option

PLAIN_STRATEGY = "sample"
# Constructor keywords that mean "beam width" in ``<name>-<M>x<N>``.
_WIDTH_OPTIONS = ("beam_width", "width", "m")
_SIZED = re.compile(r"(?P<name>[a-z][a-z0-9-]*?)-(?P<a>[0-9]+)(?:x(?P<b>[0-9]+))?")


@dataclass
class Plan:
    """A resolved request: the strategy to build and its verifier/task."""

    strategy: str
    options: dict[str, Any] = field(default_factory=dict)
    verifier: str | None = None
    task: str | None = None
    # Server-side paths of the resources the options name (never shown to clients).
    paths: dict[str, str] = field(default_factory=dict)
    # Activated experts per token on an in-process MoE model (testtime.experts; None: its default).
    experts: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "options": self.options,
            "verifier": self.verifier,
            "task": self.task,
            **({"experts": self.experts} if self.experts is not None else {}),
        }


def strategy_names() -> list[str]:
    import testtime.scale  # noqa: F401  (registers the built-in strategies)

    return STRATEGIES.names()


def _resolve_name(name: str) -> str | None:
    names = strategy_names()
    if name in names:
        return name
    if f"{name}-n" in names:  # "best-of-8" -> best-of-n
        return f"{name}-n"
    return None


@functools.cache  # a registered strategy's signature never changes
def strategy_params(name: str) -> dict[str, inspect.Parameter] | None:
    """Keyword options the strategy's constructor takes (None: it takes any)."""
    params = inspect.signature(STRATEGIES.get(name)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {k: p for k, p in params.items() if k != "self"}


def _unknown_strategy(prefix: str, status: int, param: str) -> APIError:
    return APIError(
        status,
        f"unknown strategy {prefix!r}; valid: {', '.join(strategy_names())}"
        " (as <strategy>/<model>, <strategy>-<n>/<model> or <strategy>-<M>x<N>/<model>)",
        code="model_not_found" if status == 404 else "unknown_strategy",
        param=param,
    )


def parse_model(model: str, served: str) -> tuple[str, dict[str, Any]]:
    """``(strategy, options)`` from a model name such as ``majority-16/tiny-reasoner``."""
    if model == served:
        return PLAIN_STRATEGY, {}
    prefix, sep, rest = model.partition("/")
    if not sep or rest != served:
        raise APIError(
            404,
            f"model {model!r} is not served here; use {served!r} or <strategy>/{served}"
            " (see GET /v1/models)",
            code="model_not_found",
            param="model",
        )
    name = _resolve_name(prefix)
    if name is not None:
        return name, {}
    m = _SIZED.fullmatch(prefix)
    name = _resolve_name(m["name"]) if m else None
    if m is None or name is None:
        raise _unknown_strategy(prefix, 404, "model")
    # The number sets the strategy's budget: samples n for most, turns for
    # self-refine, the thinking budget for budget forcing (as in the harness).
    budget = getattr(STRATEGIES.get(name), "budget_param", "n")
    if budget is None:
        raise APIError(
            400,
            f"strategy {name!r} takes no budget; use {name}/{served}",
            code="invalid_model",
            param="model",
        )
    if m["b"] is None:
        return name, {budget: int(m["a"])}
    params = strategy_params(name)
    width = next((w for w in _WIDTH_OPTIONS if params is None or w in params), None)
    if width is None:
        raise APIError(
            400,
            f"strategy {name!r} has no beam width; use {name}-<n>",
            code="invalid_model",
            param="model",
        )
    return name, {width: int(m["a"]), budget: int(m["b"])}


def make_plan(
    model: str,
    served: str,
    testtime: dict[str, Any],
    sampling: dict[str, Any],
    *,
    max_n: int,
    resources: Resources | None = None,
) -> Plan:
    """Merge the model-name prefix, the request's sampling fields and the
    ``testtime`` object into a :class:`Plan`, validating every option's name and
    value (:mod:`testtime.serve.options`); resource names resolve to server paths."""
    name, options = parse_model(model, served)
    testtime = dict(testtime)
    asked = testtime.pop("strategy", None)
    if asked is not None:
        if not isinstance(asked, str):
            raise APIError(400, "testtime.strategy must be a string", param="testtime.strategy")
        resolved = _resolve_name(asked)
        if resolved is None:
            raise _unknown_strategy(asked, 400, "testtime.strategy")
        if name != PLAIN_STRATEGY and resolved != name:
            raise APIError(
                400,
                f"the model name asks for strategy {name!r} but testtime.strategy is {resolved!r}",
                param="testtime.strategy",
            )
        if resolved != name:
            name, options = resolved, {}
    verifier, task = testtime.pop("verifier", None), testtime.pop("task", None)
    experts = testtime.pop("experts", None)
    if experts is not None and (isinstance(experts, bool) or not isinstance(experts, int) or experts < 1):
        raise APIError(400, "testtime.experts must be a positive integer (activated experts per token)",
                       code="invalid_option", param="testtime.experts")
    for key, value in (("verifier", verifier), ("task", task)):
        if value is not None and not isinstance(value, str):
            raise APIError(400, f"testtime.{key} must be a string", param=f"testtime.{key}")
    params = strategy_params(name)
    for key in testtime:
        if params is not None and key not in params:
            valid = ", ".join(sorted(params)) or "(none)"
            raise APIError(
                400,
                f"strategy {name!r} has no option {key!r}; valid: {valid}",
                code="unknown_option",
                param=f"testtime.{key}",
            )
    # Sampling fields of the request apply where the strategy has them (greedy has no
    # temperature); the testtime object, being explicit, wins over them.
    for key, value in sampling.items():
        if params is None or key in params:
            options[key] = value
    options.update(testtime)
    for key, value in options.items():
        check_option(name, key, value, None if params is None else params[key])
    paths = (resources or Resources()).resolve(options)
    n = options.get("n")
    if isinstance(n, int) and n > max_n:
        raise APIError(
            400,
            f"n={n} exceeds this server's limit of {max_n} samples per request",
            code="budget_too_large",
            param="n",
        )
    return Plan(name, options, verifier, task, paths, experts)


def sampling_warnings(plan: Plan, choices: int) -> list[str]:
    """A warning when greedy decoding makes a request's samples identical copies."""
    params = strategy_params(plan.strategy) or {}
    if "temperature" in params:
        temperature = plan.options.get("temperature", params["temperature"].default)
    else:
        temperature = 0.0 if plan.strategy == "greedy" else None
    per_run = plan.options.get("n", params["n"].default) if "n" in params else 1
    samples = choices * per_run if isinstance(per_run, int) else choices
    if temperature == 0 and samples > 1:
        return [
            f"temperature 0 decodes greedily: the {samples} samples per prompt are identical, "
            f"at {samples}x the cost of one; use a temperature > 0 to sample"
        ]
    return []


def build_strategy(plan: Plan):
    """The library strategy for ``plan``; bad option values are a 400."""
    from testtime.scale.base import get_strategy

    try:
        return get_strategy(plan.strategy, **{**plan.options, **plan.paths})
    except (ValueError, TypeError, ArithmeticError, UnknownName) as err:
        raise APIError(400, f"strategy {plan.strategy!r}: {err}", code="invalid_option") from None
