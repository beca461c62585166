"""Language-model backends behind the one :class:`~testtime.backends.base.Generator` interface.

:func:`get_generator` turns a spec string into a generator:

* ``embedded`` / ``tiny-reasoner`` — the shipped TinyReasoner, in process (lean sampler);
* ``tiny-reasoner-moe`` — the shipped TinyReasoner-MoE (Mixtral format, engine ``hf``);
* ``tiny-reasoner-2`` — TinyReasoner 2 (cognitive-behaviour traces; not the default yet);
* a path to a Hugging Face model directory — :class:`~testtime.backends.local.LocalGenerator`;
* ``openai:<base_url>`` — any OpenAI-compatible server (options ``model``, ``api_key`` or
  ``api_key_env``, ``mode``...), :class:`~testtime.backends.openai_http.OpenAIGenerator`;
* ``vllm:<model>`` — vLLM's offline engine, :class:`~testtime.backends.vllm_backend.VLLMGenerator`.

Option ``experts=K`` (in-process MoE models) samples with K activated experts per token
(:mod:`~testtime.backends.experts`). Backend modules are imported on first use, so ``import testtime.backends`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testtime.backends.base import BackendError, Generator
from testtime.registry import Registry, UnknownName

BACKENDS: Registry[Generator] = Registry("backend")
SPEC_HELP = (
    "embedded, tiny-reasoner, tiny-reasoner-moe, tiny-reasoner-2, openai:<base_url>, vllm:<model>, "
    "or the path of a Hugging Face model directory"
)


def embedded_model_dir() -> Path:
    """The shipped TinyReasoner directory; a clear error while it is not trained yet."""
    try:
        from testtime.zoo import reasoner_path
    except ImportError:
        reasoner_path = None
    default = Path(__file__).resolve().parents[1] / "zoo" / "weights" / "tiny-reasoner"
    try:
        path = Path(reasoner_path()) if reasoner_path is not None else default
    except FileNotFoundError:
        path = default
    if not (path / "config.json").is_file():
        raise BackendError(
            f"the embedded TinyReasoner weights are not trained yet (expected at {path}); "
            "train them with `testtime zoo train reasoner` or pass a model directory"
        )
    return path


@BACKENDS.register("embedded")
@BACKENDS.register("tiny-reasoner")
def _embedded(**options: Any) -> Generator:
    return _local(str(embedded_model_dir()), **options)


# Shipped models besides the default: backend name -> (folder of zoo/weights, the command that trains it).
SHIPPED = {
    "tiny-reasoner-moe": ("tiny-reasoner-moe", "testtime zoo train reasoner-moe"),
    "tiny-reasoner-2": ("tiny-reasoner-2", "testtime zoo prime --model scratch"),
}


def shipped_model_dir(name: str) -> Path:
    """The folder of shipped model ``name`` (:data:`SHIPPED`); a clear error while it is not trained."""
    folder, command = SHIPPED[name]
    path = Path(__file__).resolve().parents[1] / "zoo" / "weights" / folder
    if not (path / "config.json").is_file():
        raise BackendError(
            f"the {name} weights are not trained yet (expected at {path}); train them with `{command}`"
            " or pass a model directory"
        )
    return path


def _shipped(name: str):
    def create(**options: Any) -> Generator:
        return _local(str(shipped_model_dir(name)), **options)

    return create


for _name in SHIPPED:
    BACKENDS.register(_name)(_shipped(_name))


@BACKENDS.register("local")
def _local(model_dir: str, experts: int | None = None, **options: Any) -> Generator:
    from testtime.backends.local import LocalGenerator

    if experts is None:
        return LocalGenerator(model_dir, **options)
    from testtime.backends.experts import with_experts

    if isinstance(experts, str) and experts.isdigit():
        experts = int(experts)
    return with_experts(LocalGenerator(model_dir, **{"engine": "hf", **options}), experts)


@BACKENDS.register("openai")
def _openai(base_url: str, **options: Any) -> Generator:
    from testtime.backends.openai_http import OpenAIGenerator

    return OpenAIGenerator(base_url, **options)


@BACKENDS.register("vllm")
def _vllm(model: str, **options: Any) -> Generator:
    from testtime.backends.vllm_backend import VLLMGenerator

    return VLLMGenerator(model, **options)


def get_generator(spec: str, **options: Any) -> Generator:
    """A generator for ``spec`` (see the module docstring); ``options`` go to its constructor."""
    if spec in ("embedded", "tiny-reasoner", *SHIPPED):
        return BACKENDS.create(spec, **options)
    kind, sep, arg = spec.partition(":")
    if sep and kind in ("openai", "vllm"):
        if not arg:
            raise ValueError(f"backend spec {spec!r} needs a value after '{kind}:'")
        return BACKENDS.create(kind, arg, **options)
    if Path(spec).expanduser().is_dir():
        return BACKENDS.create("local", str(Path(spec).expanduser()), **options)
    raise UnknownName(f"unknown backend {spec!r}; valid: {SPEC_HELP}")


__all__ = ["BACKENDS", "SHIPPED", "SPEC_HELP", "embedded_model_dir", "get_generator", "shipped_model_dir"]
