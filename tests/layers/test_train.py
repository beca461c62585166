import pytest
import torch

from testtime.layers.lm import LMConfig, TinyLM, matched, num_parameters
from testtime.layers.recall import IGNORE, RecallSpec, recall_accuracy, recall_batch
from testtime.layers.train import TrainConfig, train


def test_recall_batch_is_deterministic_and_answers_are_the_bound_values():
    spec = RecallSpec(pairs=5, queries=3, gap=4, n_keys=10, n_values=7)
    tok, tgt = recall_batch(spec, 4, seed=3)
    assert tok.shape == (4, spec.length) and torch.equal(tok, recall_batch(spec, 4, 3)[0])
    assert not torch.equal(tok, recall_batch(spec, 4, 4)[0])
    for row, trow in zip(tok.tolist(), tgt.tolist(), strict=True):
        bound = dict(zip(row[1:11:2], row[2:12:2], strict=True))
        assert len(bound) == 5  # distinct keys
        scored = [(row[i], t) for i, t in enumerate(trow) if t != IGNORE]
        assert len(scored) == 3 and all(bound[k] == v for k, v in scored)
    with pytest.raises(ValueError, match="queries"):
        RecallSpec(pairs=2, queries=3)


def test_matched_baseline_has_equal_parameters():
    cfg = LMConfig(vocab_size=50, dim=32, heads=2, mlp_hidden=64)
    att = matched(cfg, "attention")
    a, b = num_parameters(TinyLM(cfg)), num_parameters(TinyLM(att))
    assert att.mlp_hidden > cfg.mlp_hidden and abs(a - b) <= 3 * 32 * cfg.layers
    with pytest.raises(ValueError, match="mixer"):
        LMConfig(vocab_size=5, mixer="mamba")


def _run(out, cfg, spec, model_cfg, stop_after=None):
    torch.manual_seed(0)
    model = TinyLM(model_cfg)
    log = train(model, lambda step: recall_batch(spec, 8, 1000 + step), cfg, out,
                {"model": "tiny", "spec": spec.__dict__}, stop_after=stop_after)
    return model, log


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path):
    spec = RecallSpec(pairs=4, queries=2, n_keys=8, n_values=8, n_filler=2)
    model_cfg = LMConfig(vocab_size=spec.vocab_size, dim=16, heads=2, layers=1, mlp_hidden=16, chunk=6,
                         window=4, optimizer="sgd")
    cfg = TrainConfig(steps=5, lr=1e-2, warmup=1, checkpoint_every=2)
    whole, log = _run(tmp_path / "a", cfg, spec, model_cfg)
    _run(tmp_path / "b", cfg, spec, model_cfg, stop_after=3)  # "killed" after step 3: step 3 is lost
    resumed, log_b = _run(tmp_path / "b", cfg, spec, model_cfg)
    assert [r["loss"] for r in log_b] == [r["loss"] for r in log]
    for (k, v), w in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    with pytest.raises(ValueError):  # another config in the same directory is refused
        train(TinyLM(model_cfg), lambda s: recall_batch(spec, 8, s), TrainConfig(steps=6), tmp_path / "a",
              {"model": "tiny", "spec": spec.__dict__})


def test_training_learns_something():
    torch.manual_seed(0)
    spec = RecallSpec(pairs=2, queries=1, n_keys=4, n_values=4, n_filler=2)
    model = TinyLM(LMConfig(vocab_size=spec.vocab_size, dim=16, heads=2, layers=1, mlp_hidden=16, chunk=4,
                            window=4, optimizer="sgd"))
    tok, tgt = recall_batch(spec, 256, seed=9)
    before = recall_accuracy(model(tok), tgt)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        train(model, lambda s: recall_batch(spec, 32, s), TrainConfig(steps=40, lr=2e-2, warmup=5), d, {})
    after = recall_accuracy(model(tok), tgt)
    assert after > before + 0.2, (before, after)
