"""GGUF export of GPT-2 LMs, read back with the gguf reader (llama.cpp's own checks are
in tests/backends/test_engines.py, where llama-cpp-python is installed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from testtime.zoo.tokenizer import save_tokenizer

gguf = pytest.importorskip("gguf")
from testtime.zoo.gguf_export import (  # noqa: E402
    byte_alphabet,
    export_gguf,
    read_gguf_state_dict,
    verify_gguf,
)


@pytest.fixture(scope="module")
def char_lm(tmp_path_factory):
    """A small random GPT-2 with the shipped character tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("char-lm")
    tok = save_tokenizer(path)
    config = GPT2Config(vocab_size=len(tok) + 2, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    return path


def field(reader, name):
    return reader.fields[name].contents()


def test_export_reads_back_exactly_with_llama_cpp_metadata(char_lm, tmp_path):
    info = export_gguf(char_lm, tmp_path / "m.gguf")
    assert info["vocabulary"] == "characters" and info["tensors"] == 4 + 2 * 12
    assert verify_gguf(char_lm, tmp_path / "m.gguf") == 0.0
    reader = gguf.GGUFReader(str(tmp_path / "m.gguf"))
    assert field(reader, "general.architecture") == "gpt2"
    assert field(reader, "gpt2.context_length") == 64
    assert field(reader, "gpt2.feed_forward_length") == 128
    assert field(reader, "tokenizer.ggml.model") == "gpt2"
    assert field(reader, "tokenizer.ggml.add_bos_token") is True
    tokens = field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == 56 and tokens[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    # Space and newline in GPT-2's byte alphabet, as llama.cpp's byte-level BPE expects.
    assert byte_alphabet()[ord(" ")] in tokens and byte_alphabet()[ord("\n")] in tokens
    assert tokens[-2:] == ["[PAD54]", "[PAD55]"]  # rows beyond the tokenizer
    types = field(reader, "tokenizer.ggml.token_type")
    assert types[:4] == [3, 3, 3, 3] and types[4] == 1 and types[-1] == 5
    # Conv1D weights are stored transposed: (out, in) = ggml's (in, out) ne order.
    qkv = next(t for t in reader.tensors if t.name == "blk.0.attn_qkv.weight")
    assert list(qkv.shape) == [32, 96]
    assert "output.weight" not in {t.name for t in reader.tensors}  # tied head reused


def test_f16_export_and_a_corrupt_file_is_caught(char_lm, tmp_path):
    export_gguf(char_lm, tmp_path / "h.gguf", dtype="f16")
    assert 0 < verify_gguf(char_lm, tmp_path / "h.gguf") < 1e-2
    back = read_gguf_state_dict(tmp_path / "h.gguf")
    assert back["h.0.attn.c_attn.weight"].shape == (32, 96)
    # The check compares with the source: a different model's file fails it.
    other = tmp_path / "other"
    other.mkdir()
    for f in char_lm.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    from safetensors.numpy import load_file, save_file

    state = load_file(other / "model.safetensors")
    state["transformer.h.1.mlp.c_fc.bias"] = state["transformer.h.1.mlp.c_fc.bias"] + np.float32(1)
    save_file(state, other / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="c_fc.bias differs"):
        verify_gguf(other, tmp_path / "h.gguf")


def test_bad_input_is_refused(char_lm, tmp_path):
    config = json.loads((char_lm / "config.json").read_text())
    cls = tmp_path / "cls"
    cls.mkdir()
    (cls / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2ForTokenClassification"]}))
    with pytest.raises(ValueError, match="causal LMs"):
        export_gguf(cls, tmp_path / "x.gguf")
    with pytest.raises(FileNotFoundError, match="config.json"):
        export_gguf(tmp_path / "nowhere", tmp_path / "x.gguf")
    with pytest.raises(ValueError, match="dtype"):
        export_gguf(char_lm, tmp_path / "x.gguf", dtype="q4")
    assert not (tmp_path / "x.gguf").exists()


def test_zoo_export_command(char_lm, tmp_path):
    from typer.testing import CliRunner

    from testtime.cli.main import app

    runner = CliRunner()
    out = tmp_path / "cli.gguf"
    done = runner.invoke(app, ["zoo", "export", str(char_lm), "--out", str(out), "--dtype", "f16"])
    assert done.exit_code == 0, done.output
    assert out.is_file() and '"max_abs_diff"' in done.output and '"dtype": "f16"' in done.output
    bad = runner.invoke(app, ["zoo", "export", str(char_lm), "--out", str(out), "--format", "onnx"])
    assert isinstance(bad.exception, ValueError) and "valid: gguf" in str(bad.exception)
