"""TokenScorer: a GPT-2 token classifier's per-token scores on the lean engine, equal
to Hugging Face's, with scored prefixes and a call's shared prompt computed once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2ForTokenClassification

from testtime.backends.base import BackendError
from testtime.backends.lean_scorer import TokenScorer
from testtime.zoo.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-prm")
    tok = build_tokenizer()  # the shipped PRM's (adds BOS)
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=4,
                        num_labels=1, initializer_range=0.25, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    GPT2ForTokenClassification(config).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


def reference(path: Path, seqs) -> list[torch.Tensor]:
    model = GPT2ForTokenClassification.from_pretrained(path).eval()
    with torch.inference_mode():
        return [torch.sigmoid(model(input_ids=torch.tensor([s])).logits[0, :, 0]) for s in seqs]


def test_scores_match_hf_and_reuse_prefixes(classifier_dir):
    scorer = TokenScorer.from_pretrained(classifier_dir, batch_size=2)
    prompt = [1, 5, 6, 7, 8, 9, 10, 11]
    steps = [[12, 13, 4], [14, 4], [15, 16, 17, 4]]
    first = [prompt + s for s in steps]
    got, computed = scorer.score(first)
    # The shared prompt runs once; then the rows of a batch compute from one column on
    # (its longest new part), so a shorter step recomputes a cached token or two.
    longest = max(map(len, steps))
    assert len(prompt) + sum(map(len, steps)) <= computed <= len(prompt) + len(steps) * longest
    for g, w in zip(got, reference(classifier_dir, first), strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=0)
    second = [first[0] + [18, 4], first[2] + [19, 20, 4], first[0] + [21, 4]]  # the next step
    got, computed = scorer.score(second)
    # One batch computes from its longest new part on: at most 3 columns per row.
    assert computed <= 3 * len(second) < sum(map(len, second)) / 3
    for g, w in zip(got, reference(classifier_dir, second), strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=0)
    fresh = TokenScorer.from_pretrained(classifier_dir, prefix_cache_mb=0)
    assert fresh.score(second)[1] == sum(map(len, second))


def test_bad_sequences_and_heads_are_clear_errors(classifier_dir, tiny_model_dir):
    scorer = TokenScorer.from_pretrained(classifier_dir, prefix_cache_mb=0)
    with pytest.raises(BackendError, match="sequence 1 has 65 tokens; the scorer reads 1 to 64"):
        scorer.score([[1, 2], [1] * 65])
    with pytest.raises(BackendError, match="sequence 0 has 0 tokens"):
        scorer.score([[]])
    with pytest.raises(ValueError, match="no token-classification head"):
        TokenScorer.from_pretrained(tiny_model_dir)


def test_the_prm_reports_reused_tokens_and_the_ledger_charges_only_computed_flops(classifier_dir):
    from testtime.scale.base import Compute
    from testtime.tasks import get_task
    from testtime.verifiers.prm import LearnedPRM

    task = get_task("arith")
    problem = task.generate(1, 2, seed=0)[0]
    solution = task.solve(problem)
    first_step = solution[: solution.index("\n") + 1]
    cached = LearnedPRM(task, path=classifier_dir)
    fresh = LearnedPRM(task, path=classifier_dir, prefix_cache_mb=0)
    compute = Compute()
    for texts in ([first_step, first_step + "1+1=2\n"], [solution]):  # a search's two steps
        got, want = cached.score(problem, texts), fresh.score(problem, texts)
        assert [len(s) for s in got.steps] == [len(s) for s in want.steps]
        for g, w in zip(got.steps, want.steps, strict=True):
            assert g == pytest.approx(w, abs=1e-5)
        assert got.tokens == want.tokens
        assert want.cached_tokens == 0 < got.cached_tokens < got.tokens
        compute.add_scores(got, cached)
    computed = compute.verifier_tokens - compute.verifier_cached_tokens
    assert compute.verifier_flops == 2.0 * cached.num_parameters * computed
    assert compute.computed_tokens == computed
