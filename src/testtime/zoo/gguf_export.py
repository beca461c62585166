"""Export a GPT-2 causal LM directory (the shipped TinyReasoner) to GGUF for llama.cpp.

Follows what llama.cpp's GPT-2 loader reads (``src/models/gpt2.cpp``; the reference
converter is ``convert_hf_to_gguf.py``'s ``GPT2Model``): architecture ``gpt2``,
tensors ``token_embd``, ``position_embd``, ``blk.N.{attn_norm, attn_qkv, attn_output,
ffn_norm, ffn_up, ffn_down}``, ``output_norm`` (weights and biases; a tied LM head is
left out and llama.cpp reuses ``token_embd``), with HF's Conv1D weights transposed to
the (out, in) layout. Written independently; deviations from the stock converter,
which cannot convert the shipped models:

* the context length comes from ``n_positions`` (the stock one wants ``n_ctx``);
* a character-level vocabulary (every non-special token one character, no merges) is
  written as a byte-level ``gpt2`` BPE vocabulary: each character in GPT-2's
  byte-to-unicode alphabet, special tokens as CONTROL, and one merge of two characters
  that never occur (llama.cpp refuses a BPE vocabulary without merges; GGUF refuses an
  empty array), so llama.cpp tokenizes the text one character per token exactly as the
  HF tokenizer does. A byte-level BPE tokenizer (GPT-2's own) keeps its tokens and merges;
* ``add_bos_token`` is set when the tokenizer's BOS differs from its EOS (TinyReasoner
  is trained on ``<bos> prompt``), so llama.cpp prefills what the local engines do.

Characters outside the vocabulary become ``<unk>`` in HF and are dropped by llama.cpp.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import numpy as np

# HF GPT-2 names (without the "transformer." prefix) -> (GGUF name, transpose)
_LAYER_TENSORS = {
    "ln_1.weight": ("attn_norm.weight", False),
    "ln_1.bias": ("attn_norm.bias", False),
    "attn.c_attn.weight": ("attn_qkv.weight", True),
    "attn.c_attn.bias": ("attn_qkv.bias", False),
    "attn.c_proj.weight": ("attn_output.weight", True),
    "attn.c_proj.bias": ("attn_output.bias", False),
    "ln_2.weight": ("ffn_norm.weight", False),
    "ln_2.bias": ("ffn_norm.bias", False),
    "mlp.c_fc.weight": ("ffn_up.weight", True),
    "mlp.c_fc.bias": ("ffn_up.bias", False),
    "mlp.c_proj.weight": ("ffn_down.weight", True),
    "mlp.c_proj.bias": ("ffn_down.bias", False),
}
_GLOBAL_TENSORS = {
    "wte.weight": "token_embd.weight",
    "wpe.weight": "position_embd.weight",
    "ln_f.weight": "output_norm.weight",
    "ln_f.bias": "output_norm.bias",
    "lm_head.weight": "output.weight",
}
DTYPES = {"f32": np.float32, "f16": np.float16}
_NEVER = "\u0100 \u0100"  # byte 0x00 twice, in GPT-2's alphabet: a merge that never applies


@cache
def byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (Radford et al. 2019)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def gguf_tensor_map(n_layer: int) -> dict[str, tuple[str, bool]]:
    """HF GPT-2 tensor name -> (GGUF tensor name, transposed?)."""
    out = {hf: (g, False) for hf, g in _GLOBAL_TENSORS.items()}
    for i in range(n_layer):
        for hf, (g, t) in _LAYER_TENSORS.items():
            out[f"h.{i}.{hf}"] = (f"blk.{i}.{g}", t)
    return out


def _gguf():
    try:
        import gguf
    except ImportError:
        raise ImportError("GGUF export needs the gguf package: pip install 'testtime[gguf]'") from None
    return gguf


def _vocabulary(tokenizer, vocab_size: int) -> tuple[list[str], list[int], list[str], str]:
    """(tokens, token types, merges, mode) for llama.cpp's byte-level BPE."""
    gguf = _gguf()

    special = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    plain = [p for i, p in enumerate(pieces) if i not in special]
    alphabet = byte_alphabet()
    if all(len(p) == 1 for p in plain):
        mode, merges = "characters", [_NEVER]
        tokens = [
            p if i in special else "".join(alphabet[b] for b in p.encode())
            for i, p in enumerate(pieces)
        ]
    else:
        core = json.loads(tokenizer.backend_tokenizer.to_str())
        if core["model"]["type"] != "BPE" or "ByteLevel" not in json.dumps(core["pre_tokenizer"]):
            raise ValueError(
                "GGUF export supports character-level and byte-level BPE tokenizers; "
                f"this one is {core['model']['type']} with pre-tokenizer {core['pre_tokenizer']}"
            )
        mode, tokens = "byte-level bpe", list(pieces)
        merges = [m if isinstance(m, str) else " ".join(m) for m in core["model"]["merges"]]
    types = [
        int(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
        for i in range(len(tokens))
    ]
    for i in range(len(tokens), vocab_size):  # embedding rows beyond the tokenizer
        tokens.append(f"[PAD{i}]")
        types.append(int(gguf.TokenType.UNUSED))
    return tokens, types, merges or [_NEVER], mode


def export_gguf(model_dir: str | Path, out: str | Path, *, dtype: str = "f32") -> dict:
    """Write ``model_dir`` (HF GPT-2 LM + tokenizer) as GGUF file ``out`` (atomically);
    returns a summary (path, tensors, vocabulary mode, bytes)."""
    gguf = _gguf()
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    model_dir, out = Path(model_dir), Path(out)
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"no model directory at {model_dir} (config.json missing)")
    config = json.loads(config_file.read_text())
    arch = config.get("architectures") or []
    if config.get("model_type") != "gpt2" or arch not in ([], ["GPT2LMHeadModel"]):
        raise ValueError(
            f"GGUF export takes GPT-2 causal LMs; {model_dir} is {config.get('model_type')!r} "
            f"{arch} (a verifier/classifier head has no llama.cpp equivalent)"
        )
    state = {k.removeprefix("transformer."): v for k, v in load_file(model_dir / "model.safetensors").items()}
    if "lm_head.weight" in state and np.array_equal(state["lm_head.weight"], state["wte.weight"]):
        del state["lm_head.weight"]  # tied: llama.cpp reuses token_embd
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    n_layer, n_embd = int(config["n_layer"]), int(config["n_embd"])
    tokens, types, merges, mode = _vocabulary(tokenizer, int(config["vocab_size"]))

    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(tmp), "gpt2")
    writer.add_name(model_dir.name)
    writer.add_block_count(n_layer)
    writer.add_context_length(int(config["n_positions"]))
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(int(config.get("n_inner") or 4 * n_embd))
    writer.add_head_count(int(config["n_head"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_epsilon", 1e-5)))
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id,
           "pad": tokenizer.pad_token_id, "unk": tokenizer.unk_token_id}
    for kind, tid in ids.items():
        if tid is not None:
            getattr(writer, f"add_{kind}_token_id")(int(tid))
    writer.add_add_bos_token(ids["bos"] is not None and ids["bos"] != ids["eos"])
    writer.add_add_eos_token(False)

    names = gguf_tensor_map(n_layer)
    unknown = sorted(set(state) - set(names) - {k for k in state if k.endswith(".attn.bias")})
    if unknown:
        raise ValueError(f"tensors GGUF export does not know: {unknown[:5]}")
    count = 0
    for hf, (name, transpose) in names.items():
        if hf not in state:
            if hf == "lm_head.weight":
                continue
            raise ValueError(f"{model_dir} lacks tensor {hf!r}")
        t = state[hf].T if transpose else state[hf]
        # Norms and biases stay f32 (as llama.cpp's converter keeps 1-D tensors).
        cast = DTYPES[dtype] if t.ndim == 2 else np.float32
        writer.add_tensor(name, np.ascontiguousarray(t, dtype=cast))
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    return {"path": str(out), "tensors": count, "vocabulary": mode, "tokens": len(tokens),
            "dtype": dtype, "bytes": out.stat().st_size}


def read_gguf_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The HF GPT-2 tensors back from a GGUF file written by :func:`export_gguf`
    (layouts undone), for checking an export against its source."""
    gguf = _gguf()

    reader = gguf.GGUFReader(str(path))
    n_layer = int(reader.fields["gpt2.block_count"].parts[-1][0])
    back = {g: (hf, t) for hf, (g, t) in gguf_tensor_map(n_layer).items()}
    out = {}
    for tensor in reader.tensors:
        hf, transpose = back[tensor.name]
        shape = tuple(int(d) for d in reversed(tensor.shape))  # GGUF lists ggml's ne order
        data = np.asarray(tensor.data).reshape(shape).astype(np.float32)
        out[hf] = data.T if transpose else data
    return out


def verify_gguf(model_dir: str | Path, path: str | Path) -> float:
    """Largest absolute difference between the GGUF file's tensors (read back with the
    ``gguf`` reader) and the source directory's; raises when a tensor is missing or
    differs by more than the export dtype's rounding."""
    from safetensors.numpy import load_file

    src = {
        k.removeprefix("transformer."): v
        for k, v in load_file(Path(model_dir) / "model.safetensors").items()
        if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")
    }
    back = read_gguf_state_dict(path)
    if "lm_head.weight" in src and "lm_head.weight" not in back:
        src.pop("lm_head.weight")  # tied: reused from token_embd
    if set(src) != set(back):
        raise ValueError(f"{path} tensors differ from {model_dir}: {sorted(set(src) ^ set(back))[:5]}")
    worst = 0.0
    for name, want in src.items():
        got = back[name]
        if got.shape != want.shape:
            raise ValueError(f"{path}: {name} has shape {got.shape}, expected {want.shape}")
        diff = float(np.abs(got - want).max())
        # f16 rounds to ~1e-3 relative; f32 round-trips exactly.
        if diff > 1e-3 * max(1.0, float(np.abs(want).max())) * (got.ndim == 2):
            raise ValueError(f"{path}: {name} differs from the source by {diff:g}")
        worst = max(worst, diff)
    return worst
