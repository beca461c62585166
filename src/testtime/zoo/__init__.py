"""Embedded models shipped with testtime (weights under ``zoo/weights/``) and
their training entry points, registered by name for ``testtime zoo train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testtime.registry import Registry

WEIGHTS_DIR = Path(__file__).parent / "weights"

# name -> train(out, steps, seed, resume, threads[, policy]) -> training info (``policy``: the
# PRMs' policy directory); imports stay lazy so the CLI starts without loading torch.
TRAINERS: Registry[dict[str, Any]] = Registry("zoo model")


def reasoner_path() -> Path:
    """The shipped TinyReasoner: a GPT-2 directory in Hugging Face format with its tokenizer."""
    return WEIGHTS_DIR / "tiny-reasoner"


@TRAINERS.register("reasoner")
def _train_reasoner(
    out: Path, steps: int | None, seed: int, resume: bool, threads: int
) -> dict[str, Any]:
    from testtime.zoo.reasoner import train_reasoner

    return train_reasoner(out, steps=steps, seed=seed, resume=resume, threads=threads)


@TRAINERS.register("reasoner-l")
def _train_reasoner_l(
    out: Path, steps: int | None, seed: int, resume: bool, threads: int
) -> dict[str, Any]:
    """TinyReasoner-L: ~4x TinyReasoner's parameters, trained from scratch the same way
    (prime it afterwards with ``testtime zoo prime --model <out>``)."""
    from testtime.zoo.reasoner import LARGE, ReasonerConfig, train_reasoner

    config = ReasonerConfig(**LARGE, steps=steps or 4000)
    return train_reasoner(out, seed=seed, resume=resume, threads=threads, config=config)


@TRAINERS.register("reasoner-moe")
def _train_reasoner_moe(
    out: Path, steps: int | None, seed: int, resume: bool, threads: int
) -> dict[str, Any]:
    """TinyReasoner-MoE: Mixtral format, 8 experts top-2, TinyReasoner's data and recipe."""
    from testtime.zoo.reasoner_moe import train_moe

    return train_moe(out, steps=steps, seed=seed, resume=resume, threads=threads)


@TRAINERS.register("lact-mqar")
def _train_lact_mqar(
    out: Path, steps: int | None, seed: int, resume: bool, threads: int
) -> dict[str, Any]:
    """A TinyLM with LaCT layers on multi-query associative recall (testtime.layers)."""
    from testtime.zoo.recall_lm import train_lact_mqar

    return train_lact_mqar(out, steps, seed, resume, threads)


@TRAINERS.register("prm")
def _train_prm(
    out: Path, steps: int | None, seed: int, resume: bool, threads: int, policy: Path | None = None
) -> dict[str, Any]:
    from testtime.zoo.reasoner_prm import train_prm

    return train_prm(out, steps=steps, seed=seed, resume=resume, threads=threads, policy_dir=policy)


@TRAINERS.register("prm2")
def _train_prm2(
    out: Path, steps: int | None, seed: int, resume: bool, threads: int, policy: Path | None = None
) -> dict[str, Any]:
    """TinyPRM 2 (issue 12): >= 100k of the policy's own samples (300 problems x 16 samples at
    every trained level), 2 near misses per problem, Monte-Carlo labels on 10%, ranking loss."""
    from testtime.zoo.reasoner_prm import train_prm

    return train_prm(out, steps=steps, seed=seed, resume=resume, threads=threads, policy_dir=policy,
                     problems_per_level=300, samples=16, near_misses=2, mc_share=0.1, rank_weight=1.0)


def _cifar_trainer(name: str):
    def train(
        out: Path, steps: int | None, seed: int, resume: bool, threads: int
    ) -> dict[str, Any]:
        from testtime.zoo.cifar import train_cifar

        # For the CIFAR ResNets `--steps` counts epochs (the one-cycle schedule spans them).
        return train_cifar(name, out, epochs=steps, seed=seed, resume=resume, threads=threads)

    return train


for _name in ("resnet-bn", "resnet-gn", "airnet-bn", "airnet-gn", "vit-ln"):
    TRAINERS.register(_name)(_cifar_trainer(_name))


def load_cifar_model(name: str = "resnet-bn") -> Any:
    """The shipped CIFAR-10 model ``name`` (resnet-bn | resnet-gn | airnet-bn | airnet-gn |
    vit-ln) in eval mode; inputs float [0, 1] NCHW."""
    from testtime.zoo.cifar import load_cifar_model as load

    return load(name)
