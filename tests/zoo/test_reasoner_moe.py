"""TinyReasoner-MoE trainer at toy size: Hugging Face MoE format, resumable, card."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from testtime.backends import shipped_model_dir
from testtime.backends.base import BackendError
from testtime.backends.experts import moe_info
from testtime.store import atomic_write_json
from testtime.tasks import get_task
from testtime.tasks.labels import grading
from testtime.zoo import TRAINERS
from testtime.zoo.reasoner_card import QUALITY_INFO, write_model_card
from testtime.zoo.reasoner_moe import MoEConfig, train_moe


def toy(**kw) -> MoEConfig:
    return MoEConfig(n_layer=2, n_embd=32, n_head=2, expert_size=32, n_positions=256, steps=4, batch_size=4,
                     eval_every=2, valid_problems=2, valid_samples=1, warmup=2, **kw)


def test_trains_exports_and_loads_as_an_hf_moe(tmp_path):
    info = train_moe(tmp_path / "m", config=toy(), threads=1)
    assert info["complete"] and [h["step"] for h in info["history"]] == [2, 4]
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"))
    assert type(model).__name__ == "MixtralForCausalLM"
    moe = moe_info(model)
    assert (moe.num_experts, moe.default_k) == (8, 2)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "m"))
    assert tok("1+2").input_ids[0] == tok.bos_token_id
    card = (tmp_path / "m" / "README.md").read_text()
    assert "MixtralForCausalLM" in card and "8 experts" in card and "top-2" in card
    assert json.loads((tmp_path / "m" / "training.json").read_text())["model"] == "tiny-reasoner-moe"
    assert "reasoner-moe" in TRAINERS
    # once benchmarked (benchmarks/reasoner_quality.py --card), the MoE keeps its own card plus quality
    row = {"task": "arith", "level": 6, "problems": 5, "samples": 8, "pass@1": 0.5, "pass@8": 0.75, "greedy": 0.6}
    atomic_write_json(tmp_path / "m" / QUALITY_INFO, {"results": [row]})
    write_model_card(tmp_path / "m")
    card = (tmp_path / "m" / "README.md").read_text()
    assert card.startswith("# TinyReasoner-MoE") and "## Quality" in card and "0.750" in card


def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    train_moe(tmp_path / "a", config=toy(), threads=1)
    partial = train_moe(tmp_path / "b", config=toy(), threads=1, stop_after=2)
    assert not partial["complete"]
    train_moe(tmp_path / "b", config=toy(), threads=1, resume=True)
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_resume_may_change_the_length(tmp_path):
    train_moe(tmp_path / "c", config=toy(), threads=1, stop_after=2)
    info = train_moe(tmp_path / "c", config=toy(), steps=6, threads=1, resume=True)
    assert info["steps_trained"] == 6 and info["schedule_changes"] == [{"at_step": 2, "from": 4, "to": 6}]
    assert "Resumed at step 2 with `--steps 6`" in (tmp_path / "c" / "README.md").read_text()


def test_bad_configs_and_mismatched_resumes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="top_k must be in"):
        MoEConfig(n_experts=8, top_k=9)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_moe(tmp_path / "x", config=toy(), resume=True)
    train_moe(tmp_path / "y", config=toy(), threads=1, stop_after=2)
    with pytest.raises(ValueError, match="another configuration or seed"):
        train_moe(tmp_path / "y", config=toy(aux_coef=0.1), threads=1, resume=True)


def test_shipped_moe_loads_is_small_and_solves_in_distribution_arith():
    from testtime.zoo.reasoner_sampling import sample

    try:
        path = shipped_model_dir("tiny-reasoner-moe")
    except BackendError:
        pytest.skip("TinyReasoner-MoE weights are not shipped in this checkout")
    assert (path / "model.safetensors").stat().st_size <= 20 * 2**20
    model, tok = AutoModelForCausalLM.from_pretrained(str(path)).eval(), AutoTokenizer.from_pretrained(str(path))
    moe = moe_info(model)
    assert (moe.num_experts, moe.default_k) == (8, 2)
    assert "Checkpoint selection" in (path / "README.md").read_text()
    task = get_task("arith")
    problems = task.generate(20, 4, seed=0)
    outs = sample(model, tok, [p.prompt for p in problems], n=1, temperature=0.0, max_new_tokens=160)
    with grading():
        solved = sum(bool(task.is_correct(p, text)) for p, (text,) in zip(problems, outs, strict=True))
    # a random 4M-parameter model solves none; the card's validation pass@1 at level 6 is 0.70
    assert solved >= 10, outs
