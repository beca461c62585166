"""Dynamic Experts Search on a tiny random Mixtral-format MoE (2 layers, d 32, 8 experts)."""

from __future__ import annotations

import pytest

from testtime.backends.experts import NotMoE, experts_info, with_experts
from testtime.backends.local import LocalGenerator
from testtime.scale import get_strategy
from testtime.tasks import get_task
from testtime.verifiers import get_verifier
from testtime.zoo.reasoner import ReasonerConfig, build_model
from testtime.zoo.reasoner_moe import MoEConfig, init_moe_dir
from testtime.zoo.tokenizer import build_tokenizer, save_tokenizer

TINY = MoEConfig(n_layer=2, n_embd=32, n_head=2, n_experts=8, top_k=2, expert_size=32, n_positions=256)


@pytest.fixture(scope="module")
def moe(tmp_path_factory):
    return LocalGenerator(init_moe_dir(tmp_path_factory.mktemp("moe"), TINY, seed=0), engine="hf")


@pytest.fixture(scope="module")
def arith():
    task = get_task("arith")
    return task, task.generate(1, 2, seed=0)[0]




def test_sample_mode_splits_counts_and_charges_active_flops(moe, arith):
    task, problem = arith
    strategy = get_strategy("dynamic-experts", n=8, max_tokens=10, temperature=1.0)
    assert strategy.counts(moe) == [1, 2, 3, 4]  # around the default 2 of 8
    [res] = strategy.solve([problem], moe, task)
    assert res.meta["experts"] == {"1": 2, "2": 2, "3": 2, "4": 2}
    info = experts_info(moe)
    prompt = len(moe.encode_prompt(problem.prompt))
    expected = sum(
        2.0 * info.active_parameters(k) * (2 * prompt + sum(c.num_tokens for c in res.candidates if c.meta["experts"] == k))
        for k in (1, 2, 3, 4)
    )
    assert res.compute.policy_flops == pytest.approx(expected)
    dense = 2.0 * moe.num_parameters * (res.compute.prompt_tokens + res.compute.generated_tokens)
    assert res.compute.policy_flops < dense


def test_a_single_count_is_plain_sampling_at_that_count(moe, arith):
    task, problem = arith
    [res] = get_strategy("dynamic-experts", n=4, k_min=3, k_max=3, max_tokens=8).solve([problem], moe, task)
    assert res.meta["experts"] == {"3": 4}
    assert res.meta["active_parameters"]["3"] == with_experts(moe, 3).num_parameters


def test_beam_children_inherit_their_parents_count(moe, arith, monkeypatch):
    task, problem = arith
    from testtime.backends import experts as mod

    calls: list[tuple[int, str]] = []
    original = mod.ExpertsGenerator.generate

    def generate(self, prompts, params, **kw):
        calls.extend((self.k, p) for p in prompts)
        return original(self, prompts, params, **kw)

    monkeypatch.setattr(mod.ExpertsGenerator, "generate", generate)
    strategy = get_strategy("dynamic-experts", n=8, width=2, mode="beam", select="score", k_min=1, k_max=3,
                            step_tokens=40, max_tokens=120, max_steps=4, temperature=1.0)
    [res] = strategy.solve([problem], moe, task, get_verifier("oracle", task=task))
    assert res.candidates and all(c.meta["experts"] in (1, 2, 3) for c in res.candidates)
    assert max(c.meta["depth"] for c in res.candidates) >= 2  # some paths were extended
    assert {k for k, p in calls if p == problem.prompt} == {1, 2, 3}  # the first steps split over counts
    for path in res.candidates:
        full = problem.prompt + path.text
        extended = [k for k, p in calls if p != problem.prompt and full.startswith(p)]
        assert set(extended) <= {path.meta["experts"]}


def test_dense_model_and_bad_counts_refused_before_generation(moe, arith, tmp_path):
    task, problem = arith
    dense_dir = tmp_path / "dense"
    tok = build_tokenizer()
    build_model(ReasonerConfig(n_layer=1, n_embd=16, n_head=2, n_positions=64), tok).save_pretrained(dense_dir)
    save_tokenizer(dense_dir)
    dense = LocalGenerator(dense_dir, engine="hf")
    with pytest.raises(NotMoE, match="GPT2LMHeadModel is a dense model"):
        get_strategy("dynamic-experts").solve([problem], dense, task)
    called = []
    moe_generate = moe.generate
    moe.generate = lambda *a, **k: called.append(1) or moe_generate(*a, **k)
    try:
        with pytest.raises(ValueError, match=r"\[1, 8\] for MixtralForCausalLM"):
            get_strategy("dynamic-experts", k_max=9).solve([problem], moe, task)
    finally:
        del moe.generate
    assert not called
    with pytest.raises(ValueError, match="k_min 5 is above k_max 3"):
        get_strategy("dynamic-experts", k_min=5, k_max=3)
    with pytest.raises(ValueError, match="needs a verifier"):
        get_strategy("dynamic-experts", select="score").solve([problem], moe, task)


def test_uneven_budgets_favour_the_default_count(moe, arith):
    task, problem = arith
    one = get_strategy("dynamic-experts", n=1, max_tokens=6).solve([problem], moe, task)[0]
    assert one.meta["experts"] == {"1": 0, "2": 1, "3": 0, "4": 0}  # N = 1: plain sampling at k = 2
    five = get_strategy("dynamic-experts", n=5, max_tokens=6).solve([problem], moe, task)[0]
    assert five.meta["experts"] == {"1": 1, "2": 2, "3": 1, "4": 1}
