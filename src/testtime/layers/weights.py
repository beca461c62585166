"""Model directories for the :mod:`testtime.layers` models: ``config.json`` (the kind and
its config dataclass), ``model.safetensors`` (the state dict, RWKV-7's under the public
checkpoint names) and the character tokenizer of the embedded models where the model
reads text."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from testtime.layers.lm import LMConfig, TinyLM
from testtime.layers.rwkv7 import RWKV7, RWKV7Config
from testtime.registry import Registry
from testtime.store import atomic_write_json

KINDS: Registry[tuple[type, type]] = Registry("layers model kind")
KINDS.register("tiny-lm")(lambda: (LMConfig, TinyLM))
KINDS.register("rwkv7")(lambda: (RWKV7Config, RWKV7))


def save_model(directory: str | Path, kind: str, model: nn.Module) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    KINDS.get(kind)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(directory / "model.safetensors"))
    atomic_write_json(directory / "config.json", {"kind": kind, **dataclasses.asdict(model.cfg)})
    return directory


def load_model(directory: str | Path) -> tuple[str, nn.Module]:
    """(kind, model in eval mode) from a directory written by :func:`save_model`."""
    directory = Path(directory)
    path = directory / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{directory} has no config.json (not a testtime.layers model directory)")
    fields = json.loads(path.read_text())
    kind = fields.pop("kind", None)
    if kind is None:
        raise ValueError(f"{path} names no model kind (a layers model has 'kind': rwkv7 or tiny-lm)")
    config_cls, model_cls = KINDS.create(kind)
    model = model_cls(config_cls(**fields))
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    return kind, model.eval()
