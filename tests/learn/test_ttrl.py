"""TTRL end to end on a tiny random GPT-2: outputs, resume after a kill, the NaN
guard, a DIR holding another run, the memory check, the source model untouched."""

from __future__ import annotations

import json

import pytest
import torch

from testtime.learn import METHODS, LearnRequest
from testtime.learn.common import make_problems
from testtime.learn.grpo import GRPOTrainer
from testtime.learn.policy import Policy
from testtime.tasks import get_task

FAST = {"steps": 3, "prompts_per_step": 2, "n_votes": 4, "n_samples": 3, "max_tokens": 24,
        "eval_samples": 2, "checkpoint_every": 1, "lr": 1e-3}


def request(tiny_dir, out, method="ttrl", **options):
    task = get_task("arith")
    return LearnRequest(method, task, "2-3", make_problems(task, [2, 3], 3, 0), out, tiny_dir,
                        options={**FAST, **options}, show_progress=False)


def weights(path):
    return {k: v.clone() for k, v in Policy(path).model.state_dict().items()}


def test_ttrl_writes_log_plot_metrics_and_new_weights_only_to_out(answering_dir, tmp_path):
    tiny_dir = answering_dir
    source = weights(tiny_dir)
    out = tmp_path / "run"
    metrics = METHODS.create("ttrl", request(tiny_dir, out))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3]
    for key in ("label_acc", "reward_acc", "majority_ratio", "pass@1", "maj@4", "mean_length",
                "rollout_tokens"):
        assert all(key in row for row in log)
    assert (out / "log.png").stat().st_size > 0
    assert json.loads((out / "metrics.json").read_text())["steps_done"] == 3
    assert set(metrics["before"]) >= {"pass@1", "maj@2"} and metrics["stopped"] is None
    adapted = weights(out / "model")
    assert any(not torch.equal(adapted[k], source[k]) for k in source)
    assert all(torch.equal(weights(tiny_dir)[k], source[k]) for k in source)  # never written


def test_rerun_resumes_after_a_kill(tiny_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_step, calls = GRPOTrainer.step, []

    def dying(self, step):
        calls.append(step)
        if step == 2:
            raise KeyboardInterrupt  # killed during the third step
        return real_step(self, step)

    monkeypatch.setattr(GRPOTrainer, "step", dying)
    with pytest.raises(KeyboardInterrupt):
        METHODS.create("ttrl", request(tiny_dir, out))
    assert not (out / "metrics.json").exists() and not (out / "model").exists()
    monkeypatch.setattr(GRPOTrainer, "step", lambda self, step: (calls.append(step), real_step(self, step))[1])
    metrics = METHODS.create("ttrl", request(tiny_dir, out))
    assert calls == [0, 1, 2, 2]  # steps 1-2 came from the checkpoint
    assert [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert metrics["steps_done"] == 3


def test_a_dir_holding_another_runs_config_is_refused(tiny_dir, tmp_path):
    out = tmp_path / "run"
    METHODS.create("ttrl", request(tiny_dir, out, steps=1))
    with pytest.raises(ValueError, match="another run"):
        METHODS.create("ttrl", request(tiny_dir, out, steps=1, lr=5e-4))


def test_nan_stops_training_and_keeps_the_last_good_weights(tiny_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = Policy.token_stats
    state = {"calls": 0}

    def poisoned(self, prompts, completions, *, model=None):
        st = real(self, prompts, completions, model=model)
        if torch.is_grad_enabled():
            state["calls"] += 1
            if state["calls"] == 2:  # the second step's loss
                st.logp = st.logp * float("nan")
        return st

    snapshots = []
    real_update = GRPOTrainer._update

    def spy(self, batch):
        result = real_update(self, batch)
        snapshots.append({k: v.clone() for k, v in self.policy.model.state_dict().items()})
        return result

    monkeypatch.setattr(Policy, "token_stats", poisoned)
    monkeypatch.setattr(GRPOTrainer, "_update", spy)
    metrics = METHODS.create("ttrl", request(tiny_dir, out))
    assert metrics["steps_done"] == 1
    assert "non-finite" in metrics["stopped"] and "kept the weights of step 1" in metrics["stopped"]
    saved = weights(out / "model")
    assert all(torch.equal(saved[k], snapshots[0][k]) for k in saved)


def test_bad_configurations_fail_before_training(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match="GiB"):
        METHODS.create("ttrl", request(tiny_dir, tmp_path / "a", memory_limit_gb=1e-6))
    with pytest.raises(ValueError, match="no option 'n_vote'"):
        METHODS.create("ttrl", request(tiny_dir, tmp_path / "b", n_vote=3))
    with pytest.raises(ValueError, match="write over the model"):
        METHODS.create("ttrl", request(tiny_dir, tiny_dir))
    assert not (tmp_path / "a" / "checkpoint.pt").exists()


def test_spine_updates_only_forking_tokens_and_ettrl_counts_tree_tokens(tiny_dir, tmp_path):
    spine = METHODS.create("spine", request(tiny_dir, tmp_path / "s", steps=1))
    ttrl = METHODS.create("ttrl", request(tiny_dir, tmp_path / "t", steps=1))
    s_log = json.loads((tmp_path / "s" / "log.jsonl").read_text().splitlines()[0])
    t_log = json.loads((tmp_path / "t" / "log.jsonl").read_text().splitlines()[0])
    # same rollouts (same seed), SPINE trains on ~20% of their tokens, with the band term
    assert s_log["rollout_tokens"] == t_log["rollout_tokens"]
    assert 0 < s_log["updated_tokens"] <= 0.3 * t_log["updated_tokens"]
    assert "band" in s_log and spine["config"]["token_mask"] == "forking"
    assert ttrl["config"]["token_mask"] == "all"
    ettrl = METHODS.create("ettrl", request(tiny_dir, tmp_path / "e", steps=1, n_votes=7, n_samples=3))
    assert ettrl["rollout_tokens"] > 0 and ettrl["config"]["rollout"] == "tree"


def test_ttrl_sharpens_the_policy_towards_its_own_majority(answering_dir, tmp_path):
    """The TTRL mechanism: rewarding agreement with the majority raises the majority's
    share (the answering model starts at ~1 in 4 samples agreeing)."""
    task = get_task("arith")
    req = LearnRequest("ttrl", task, "2", task.generate(4, 2, 0), tmp_path / "r", answering_dir,
                       options={"steps": 20, "prompts_per_step": 4, "n_votes": 8, "n_samples": 8,
                                "max_tokens": 16, "eval_samples": 8, "lr": 5e-3},
                       show_progress=False)
    METHODS.create("ttrl", req)
    ratios = [json.loads(x)["majority_ratio"] for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert sum(ratios[-5:]) / 5 > sum(ratios[:5]) / 5 + 0.15
