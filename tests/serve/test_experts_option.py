"""The ``testtime.experts`` request option over a tiny random MoE (and its refusals)."""

from __future__ import annotations

import openai
import pytest

from testtime.backends.experts import experts_info
from testtime.backends.local import LocalGenerator
from testtime.zoo.reasoner_moe import MoEConfig, init_moe_dir

from .scripted import ScriptedGenerator, client

TINY = MoEConfig(n_layer=2, n_embd=32, n_head=2, n_experts=8, top_k=2, expert_size=32, n_positions=256)
PROMPT = "arith: 3+4*2\n"


@pytest.fixture(scope="module")
def moe(tmp_path_factory):
    return LocalGenerator(init_moe_dir(tmp_path_factory.mktemp("moe"), TINY), engine="hf")


def flops(resp) -> float:
    return resp.usage.model_extra["testtime"]["compute"]["policy_flops"]


def test_experts_option_sets_the_count_and_the_flops(make_server, moe):
    c = client(make_server(moe, serialize=True))
    kw = {"model": "majority-2/tiny", "prompt": PROMPT, "max_tokens": 6, "seed": 1}
    one = c.completions.create(**kw, extra_body={"testtime": {"experts": 1}})
    four = c.completions.create(**kw, extra_body={"testtime": {"experts": 4}})
    info = experts_info(moe)
    tokens = [r.usage.model_extra["testtime"]["compute"]["computed_tokens"] for r in (one, four)]
    assert flops(one) == pytest.approx(2 * info.active_parameters(1) * tokens[0])
    assert flops(four) == pytest.approx(2 * info.active_parameters(4) * tokens[1])
    des = c.completions.create(model="dynamic-experts-4/tiny", prompt=PROMPT, max_tokens=6, seed=1)
    assert des.usage.model_extra["testtime"]["results"][0]["meta"]["experts"] == {"1": 1, "2": 1, "3": 1, "4": 1}


@pytest.mark.parametrize("experts, match", [(9, r"\[1, 8\] for MixtralForCausalLM"), (0, "positive integer"),
                                            ("4", "positive integer")])
def test_bad_counts_are_a_400(make_server, moe, experts, match):
    c = client(make_server(moe, serialize=True))
    with pytest.raises(openai.BadRequestError, match=match):
        c.completions.create(model="tiny", prompt=PROMPT, max_tokens=4, extra_body={"testtime": {"experts": experts}})


def test_a_model_without_routers_is_a_400(make_server):
    c = client(make_server(ScriptedGenerator(lambda p, i, j: "answer: 1")))
    with pytest.raises(openai.BadRequestError, match="no in-process transformers model"):
        c.completions.create(model="tiny", prompt=PROMPT, max_tokens=4, extra_body={"testtime": {"experts": 2}})
