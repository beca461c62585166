"""Policy: differentiable token stats agree with the sampler, refresh, atomic save."""

from __future__ import annotations

import pytest
import torch

from testtime.learn.policy import Policy


@pytest.fixture()
def policy(tiny_dir):
    return Policy(tiny_dir)


def test_token_stats_match_the_samplers_logprobs(policy):
    from testtime.backends.base import SamplingParams

    prompts = [policy.encode_prompt("arith: 3 +4\n"), policy.encode_prompt("arith: 12 *3 -5\n")]
    res = policy.sampler.generate(prompts, SamplingParams(n=2, max_tokens=15, seed=1, logprobs=True))
    comps = [c for row in res.completions for c in row]
    ids = [policy.completion_ids(c) for c in comps]
    st = policy.token_stats([p for p in prompts for _ in range(2)], ids)
    for b, c in enumerate(comps):
        assert st.mask[b].sum() == len(ids[b]) == len(c.token_logprobs)
        assert torch.allclose(st.logp[b, : len(ids[b])], torch.tensor(c.token_logprobs), atol=1e-4)
    assert (st.entropy[st.mask] > 0).all() and (st.entropy[~st.mask] == 0).all()


def test_refresh_makes_the_sampler_read_new_weights(policy):
    prompt = [policy.encode_prompt("arith: 3 +4\n")]
    greedy = lambda: policy.rollouts(prompt, 1, temperature=0.0, max_tokens=12, seed=None)[0][0][0].ids  # noqa: E731
    before = greedy()
    with torch.no_grad():
        policy.model.lm_head.weight[:, :] = 0
        policy.model.lm_head.weight[policy.tokenizer.convert_tokens_to_ids("7"), :] = 1
        policy.model.transformer.ln_f.weight.fill_(0)
        policy.model.transformer.ln_f.bias.fill_(1)
    policy.refresh()  # (the sampler keeps its own copy of some tensors)
    assert greedy() != before
    assert policy.detok.decode(greedy()) == "7" * 12


def test_save_writes_a_loadable_model_dir_and_rejects_non_gpt2(policy, tmp_path):
    policy.save(tmp_path / "m")
    policy.save(tmp_path / "m")  # overwriting is atomic too
    again = Policy(tmp_path / "m")
    for a, b in zip(policy.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob(".m*"))  # no temp dirs left
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ValueError, match="GPT-2"):
        Policy(tmp_path / "bad")
