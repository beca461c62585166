"""Expert rerouting on a tiny random Mixtral-format MoE (2 layers, d 32, 8 experts)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from testtime.backends.experts import NotMoE, routers
from testtime.learn.base import LearnRequest
from testtime.learn.rerouting import RerouteConfig, Rerouter, rerouting
from testtime.tasks import get_task
from testtime.zoo.reasoner import ReasonerConfig, build_model
from testtime.zoo.reasoner_moe import MoEConfig, init_moe_dir
from testtime.zoo.tokenizer import build_tokenizer

TINY = MoEConfig(n_layer=2, n_embd=32, n_head=2, n_experts=8, top_k=2, expert_size=32, n_positions=256)
PROMPT = [1, 10, 11, 12, 4, 13, 14, 15, 16, 5, 7]


@pytest.fixture(scope="module")
def moe_dir(tmp_path_factory):
    return init_moe_dir(tmp_path_factory.mktemp("moe"), TINY, seed=0)


@pytest.fixture
def model(moe_dir):
    net = AutoModelForCausalLM.from_pretrained(str(moe_dir)).eval()
    with torch.no_grad():  # random experts are near zero; scaled up, routing changes the output
        for layer in net.model.layers:
            for p in layer.mlp.experts.parameters():
                p.mul_(30)
    return net


def router_logits(model, ids):
    seen = []
    handle = routers(model)[0].register_forward_hook(lambda m, a, out: seen.append(out[0].detach()))
    with torch.no_grad():
        model(ids)
    handle.remove()
    return seen[0]


def test_the_offset_lands_exactly_on_the_router_logits(model):
    r = Rerouter(model, 2, 0, RerouteConfig())
    ids = torch.tensor([PROMPT])
    plain = router_logits(model, ids)
    r.delta = torch.randn(2, 1, 8)
    with r._hooks(1):
        shifted = router_logits(model, ids)
    assert torch.allclose(shifted - plain, r.delta[0, 0].expand_as(plain), atol=1e-4)
    with torch.no_grad():
        bare = model(ids).logits
        r.delta = torch.zeros(2, 1, 8)
        with r._hooks(1):
            assert torch.allclose(model(ids).logits, bare, atol=1e-6)  # a zero offset changes nothing


def test_an_update_lowers_the_context_loss_and_leaves_weights_alone(model):
    r = Rerouter(model, 2, 0, RerouteConfig(steps=10, lr=0.5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.tensor([PROMPT])
    mask = torch.ones_like(ids)

    def loss() -> float:
        with r._hooks(1), torch.no_grad():
            return float(model(ids, labels=ids).loss)

    r.delta = torch.zeros(2, 1, 8)
    start = loss()
    with r._hooks(1), torch.enable_grad():
        r._update(ids, mask)
    assert loss() < start
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_updates_every_k_tokens_and_reset_per_request(model):
    cfg = RerouteConfig(n=2, steps=1, lr=1.0, every=5, max_tokens=20)
    r = Rerouter(model, None, 0, cfg)  # no EOS: every sample runs the full 20 tokens
    a = r.generate(PROMPT, torch.Generator().manual_seed(0))
    assert a.updates == 1 + 3  # prefill, then after tokens 5, 10, 15
    assert [len(s) for s in a.samples] == [20, 20]
    assert a.adapt_tokens == len(PROMPT) + 2 * (len(PROMPT) + 5 + len(PROMPT) + 10 + len(PROMPT) + 15)
    assert r.delta is None
    b = r.generate(PROMPT, torch.Generator().manual_seed(0))
    assert a.samples == b.samples  # nothing carried over from the first request
    plain = Rerouter(model, None, 0, RerouteConfig(n=2, every=5, max_tokens=20, adapt=False))
    c = plain.generate(PROMPT, torch.Generator().manual_seed(0))
    assert c.updates == 0 and c.samples != a.samples


def test_dense_models_and_bad_layers_are_refused(model):
    dense = build_model(ReasonerConfig(n_layer=1, n_embd=16, n_head=2, n_positions=64), build_tokenizer())
    with pytest.raises(NotMoE, match="GPT2LMHeadModel is a dense model"):
        Rerouter(dense, 2, 0, RerouteConfig())
    with pytest.raises(ValueError, match="layers=3, but MixtralForCausalLM has 2 MoE layers"):
        Rerouter(model, 2, 0, RerouteConfig(layers=3))
    with pytest.raises(ValueError):
        RerouteConfig(lr=0)


def test_learn_method_runs_label_free_and_resumes(moe_dir, tmp_path):
    task = get_task("arith")
    problems = task.generate(2, 2, seed=0)

    def request() -> LearnRequest:
        return LearnRequest("rerouting", task, "2", problems, tmp_path / "run", moe_dir, seed=0,
                            options={"n": 2, "max_tokens": 12, "every": 4, "steps": 1},
                            show_progress=False, label_free=True)

    metrics = rerouting(request())
    assert metrics["problems"] == 2 and metrics["labels"] == "none"
    assert metrics["after"]["mean_updates"] >= 1 and metrics["before"]["mean_updates"] == 0
    assert set(metrics["before"]) == {"pass@1", "maj@2", "mean_tokens", "mean_wall_s", "mean_updates"}
    for key in ("pass@1", "maj@2"):  # the paired after − before difference is the difference of the means
        mean, low, high = metrics["paired_difference"][key]
        assert mean == pytest.approx(metrics["after"][key] - metrics["before"][key]) and low <= mean <= high
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["problems"] == 2
    again = rerouting(request())  # every problem stored: nothing recomputed
    assert again["after"]["mean_wall_s"] == metrics["after"]["mean_wall_s"]


def test_the_shipped_moe_is_reroutings_default_model():
    from testtime.cli.learn import default_model

    directory = default_model("rerouting")
    assert directory.name == "tiny-reasoner-moe"
    if not (directory / "config.json").is_file():
        pytest.skip("TinyReasoner-MoE weights are not shipped in this checkout")
    assert routers(AutoModelForCausalLM.from_pretrained(str(directory)))  # an MoE the method can reroute
