"""CIFAR-10 networks from their configs and their files: build, load the shipped
weights, export weights + config + model card, write training checkpoints atomically."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from testtime.zoo.cifar_cards import model_card
from testtime.zoo.cifar_config import WEIGHTS_DIR, CifarConfig, config_for
from testtime.zoo.cifar_nets import AirNet, CifarViT
from testtime.zoo.cifar_resnet import CifarResNet


def build_model(config: CifarConfig) -> nn.Module:
    """The network of ``config.arch``: resnet9 (here), airnet or vit (:mod:`cifar_nets`)."""
    archs = {"resnet9": CifarResNet, "airnet": AirNet, "vit": CifarViT}
    if config.arch not in archs:
        raise ValueError(f"unknown arch {config.arch!r}; valid: {', '.join(archs)}")
    return archs[config.arch](config)


def weights_dir(name: str) -> Path:
    """Folder of the shipped weights of ``name`` (e.g. ``resnet-bn`` -> ``weights/resnet-bn-cifar10``)."""
    config_for(name)
    return WEIGHTS_DIR / f"{name}-cifar10"


def load_cifar_model(name: str = "resnet-bn", path: str | Path | None = None) -> nn.Module:
    """The shipped (or ``path``'s) CIFAR-10 model in eval mode; inputs float [0, 1] NCHW."""
    from safetensors.torch import load_file

    folder = Path(path) if path is not None else weights_dir(name)
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    if not (cfg_path.is_file() and w_path.is_file()):
        raise FileNotFoundError(
            f"no weights for {name!r} in {folder} (train them: testtime zoo train {name})"
        )
    cfg = json.loads(cfg_path.read_text())
    config = CifarConfig.from_dict(cfg["config"])
    model = build_model(config)
    model.load_state_dict(load_file(str(w_path)))
    return model.eval()


def save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(
    path: Path, cfg: CifarConfig, model: nn.Module, opt: torch.optim.Optimizer, resume: bool
) -> dict | None:
    """The state saved at ``path`` with ``model`` and ``opt`` restored from it (``None``
    when there is none); refuses a checkpoint of another config, or one not resumed."""
    if not path.exists():
        return None
    if not resume:
        raise ValueError(f"{path} exists; pass --resume to continue or choose a new --out")
    state = torch.load(path, weights_only=False)
    if state["config"] != asdict(cfg):
        raise ValueError(f"{path} was trained with a different config; use a new --out")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    return state


def export_model(
    model: nn.Module, out_dir: Path, name: str, card: dict, readme: str | None = None
) -> None:
    """Write ``model.safetensors``, ``config.json`` and a model card ``README.md``
    (``readme``, else the ResNet-9 card of :func:`model_card`)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    buf_path = out_dir / ".model.safetensors.tmp"
    save_file(tensors, str(buf_path))
    atomic_write_bytes(out_dir / "model.safetensors", buf_path.read_bytes())
    buf_path.unlink()
    atomic_write_json(out_dir / "config.json", {"name": name, "config": asdict(model.config)})
    atomic_write_text(out_dir / "README.md", readme or model_card(name, model.config, card))
