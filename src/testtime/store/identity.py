"""What a stored result depends on, as a JSON-able identity for its store key.

A generated pool is determined by the prompt text, the model (its name AND the
bytes of its weights: retrained weights in the same folder are another model),
the sampling settings and the seed. :func:`component_identity` describes a
model component (a generator, a verifier, a judge's generator) without importing
any backend: by duck typing on the attributes they expose (``name``,
``model_dir`` / ``path``, a Hugging Face ``model.name_or_path``, a nested
``generator``, ``dtype`` / ``device``). Weight files are hashed once per
(path, size, mtime) per process.

Deviation: a remote model (an OpenAI-compatible server) is identified by its
URL and model name only; the server's weights cannot be seen from here.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

# Files that determine a model's outputs (README, quality and training cards do not).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".model")
WEIGHT_NAMES = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "vocab.json", "merges.txt",
)


def weights_hash(model_dir: str | os.PathLike) -> str:
    """SHA-256 over the names and bytes of a model directory's weight, config and
    tokenizer files (see WEIGHT_SUFFIXES / WEIGHT_NAMES)."""
    root = Path(model_dir)
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name in WEIGHT_NAMES)
    )
    if not files:
        raise ValueError(f"{root}: no weight or config files to identify the model by")
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(_file_hash(str(p), st.st_size, st.st_mtime_ns).encode())
    return h.hexdigest()[:32]


@lru_cache(maxsize=256)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _model_dir(obj: Any) -> Path | None:
    for attr in ("model_dir", "path", "model"):
        value = getattr(obj, attr, None)
        if isinstance(value, str | os.PathLike) and Path(value).is_dir():
            return Path(value)
    name_or_path = getattr(getattr(obj, "model", None), "name_or_path", None)  # a HF model
    if isinstance(name_or_path, str) and name_or_path and Path(name_or_path).is_dir():
        return Path(name_or_path)
    return None


def component_identity(obj: Any) -> dict[str, Any] | None:
    """Name, numerics and weights hash of a model component (None stays None)."""
    if obj is None:
        return None
    ident: dict[str, Any] = {"name": str(getattr(obj, "name", type(obj).__name__))}
    for attr in ("dtype", "device"):
        if getattr(obj, attr, None) is not None:
            ident[attr] = str(getattr(obj, attr))
    model_dir = _model_dir(obj)
    if model_dir is not None:
        ident["weights"] = weights_hash(model_dir)
    inner = getattr(obj, "generator", None)
    if inner is not None and inner is not obj:
        ident["generator"] = component_identity(inner)
    return ident
