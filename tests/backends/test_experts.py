"""Expert-count control on a tiny random Mixtral-format MoE (2 layers, d 32, 8 experts)."""

from __future__ import annotations

import threading

import pytest
import torch
from transformers import AutoModelForCausalLM

from testtime.backends import get_generator
from testtime.backends.base import SamplingParams
from testtime.backends.experts import NotMoE, active_experts, moe_info, routers, with_experts
from testtime.zoo.reasoner_moe import MoEConfig, init_moe_dir

TINY = MoEConfig(n_layer=2, n_embd=32, n_head=2, n_experts=8, top_k=2, expert_size=32, n_positions=128)


@pytest.fixture(scope="module")
def moe_dir(tmp_path_factory):
    return init_moe_dir(tmp_path_factory.mktemp("moe"), TINY, seed=0)


def test_info_and_active_parameters(moe_dir):
    model = AutoModelForCausalLM.from_pretrained(str(moe_dir))
    info = moe_info(model)
    assert (info.architecture, info.num_experts, info.default_k, info.moe_layers) == ("MixtralForCausalLM", 8, 2, 2)
    per_expert = 3 * 32 * 32
    assert info.expert_parameters == 2 * 8 * per_expert
    assert info.active_parameters(8) == info.total_parameters
    assert info.active_parameters(2) - info.active_parameters(1) == 2 * per_expert  # one expert per layer


def test_count_changes_routing_and_is_restored(moe_dir):
    model = AutoModelForCausalLM.from_pretrained(str(moe_dir)).eval()
    ids = torch.tensor([[1, 5, 6, 7, 8, 9]])
    with torch.no_grad():
        base = model(ids).logits
        with active_experts(model, 6):
            assert all(r.top_k == 6 for r in routers(model))
            wide = model(ids).logits
        again = model(ids).logits
    assert all(r.top_k == 2 for r in routers(model))
    assert not torch.allclose(base, wide)
    assert torch.equal(base, again)


def test_restored_after_an_error(moe_dir):
    model = AutoModelForCausalLM.from_pretrained(str(moe_dir))
    with pytest.raises(RuntimeError), active_experts(model, 3):
        raise RuntimeError("boom")
    assert [r.top_k for r in routers(model)] == [2, 2]


def test_generator_views_and_flops(moe_dir):
    gen = get_generator(str(moe_dir), experts=1)
    assert gen.k == 1 and gen.name.endswith("experts=1")
    four = with_experts(gen, 4)
    assert four.num_parameters > gen.num_parameters
    params = SamplingParams(n=2, temperature=1.0, max_tokens=6, seed=3)
    a = four.generate(["1+2="], params).completions[0]
    b = four.generate(["1+2="], params).completions[0]
    assert [c.text for c in a] == [c.text for c in b]  # seeded: reproducible under the view
    assert four.describe()["experts"]["active"] == 4
    assert [r.top_k for r in routers(gen.model)] == [2, 2]


def test_concurrent_views_do_not_leak(moe_dir):
    gen = get_generator(str(moe_dir), experts=2)
    seen: list[int] = []
    original = gen.inner.generate

    def spy(*args, **kwargs):
        seen.append(routers(gen.model)[0].top_k)
        return original(*args, **kwargs)

    gen.inner.generate = spy
    views = [with_experts(gen, k) for k in (1, 3, 5, 7)]
    params = SamplingParams(n=1, max_tokens=3, seed=0)
    threads = [threading.Thread(target=v.generate, args=(["1+1="], params)) for v in views]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == [1, 3, 5, 7]


def test_bad_counts_and_dense_models_refused(moe_dir, tmp_path):
    gen = get_generator(str(moe_dir), experts=2)
    for bad in (0, 9, True, 2.5):
        with pytest.raises(ValueError, match="MixtralForCausalLM, which has 8 experts"):
            with_experts(gen, bad)
    with pytest.raises(ValueError, match="experts must be an integer in \\[1, 8\\]"):
        get_generator(str(moe_dir), experts=12)


def test_dense_models_refused_naming_the_architecture(tiny_model_dir, lean_gen, hf_gen):
    with pytest.raises(NotMoE, match="GPT2LMHeadModel .* is a dense model"):
        with_experts(lean_gen, 2)
    with pytest.raises(NotMoE, match="GPT2LMHeadModel is a dense model"):
        with_experts(hf_gen, 2)
    with pytest.raises(NotMoE, match="GPT2LMHeadModel is a dense model"):
        get_generator(str(tiny_model_dir), experts=2)
