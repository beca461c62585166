import pytest
import torch

from testtime.tasks import get_task
from testtime.verifiers import get_verifier
from testtime.verifiers.prm import LearnedPRM
from testtime.zoo.prm_format import scored_positions
from testtime.zoo.reasoner import ReasonerConfig, train_reasoner
from testtime.zoo.reasoner_prm import auroc, labels_for, train_prm


def test_scored_positions_are_step_newlines():
    prompt = "arith: 7 +3\n"
    text, pos = scored_positions(len(prompt) + 1, "7+3=10\nanswer: 10")
    full = "<" + prompt + text  # one stand-in character for <bos>
    assert text.endswith("\n") and [full[p] for p in pos] == ["\n", "\n"]
    assert full[pos[0] - 6 : pos[0]] == "7+3=10"
    assert scored_positions(5, "1+1=2\n\nanswer: 2\nrevise\n1+1=2\n")[1] == [10, 21]


def test_labels_add_the_outcome_after_the_steps():
    row = {"prompt": "arith: 7 +3\n", "solution": "7+3=11\nanswer: 11\n", "steps": [False], "correct": False}
    text, pos, targets = labels_for(row)
    assert len(pos) == len(targets) == 2 and targets == [0.0, 0.0]
    cut = {**row, "solution": "7+3=1", "steps": [False]}  # cut at max_tokens mid-line
    assert len(labels_for(cut)[1]) == 1


def test_auroc():
    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auroc([0.9, 0.1], [False, True]) == 0.0
    assert auroc([0.5, 0.5], [False, True]) == 0.5


def test_train_and_score_a_tiny_prm(tmp_path):
    tiny = ReasonerConfig(n_layer=1, n_embd=32, n_head=2, batch_size=4, warmup=1, eval_every=2,
                          valid_problems=2, valid_samples=1, steps=2)
    train_reasoner(tmp_path / "policy", config=tiny, progress=False)
    info = train_prm(tmp_path / "prm", steps=3, policy_dir=tmp_path / "policy", problems_per_level=1,
                     samples=1)
    assert info["train_samples"] > 0 and (tmp_path / "prm" / "README.md").exists()
    with pytest.raises(FileExistsError):
        train_prm(tmp_path / "prm", steps=3, policy_dir=tmp_path / "policy")
    task = get_task("arith")
    problem = task.generate(1, 2, seed=0)[0]
    prm = LearnedPRM(task, path=tmp_path / "prm")
    scores = prm.score(problem, [task.solve(problem), "1+1=2\n"])
    assert [len(s) for s in scores.steps] == [3, 1] and scores.tokens > 0
    assert all(0.0 <= x <= 1.0 for s in scores.steps for x in s)
    orm = get_verifier("orm", task=task, path=tmp_path / "prm")
    assert orm.score(problem, [task.solve(problem)]).steps == [scores.steps[0][-1:]]


def test_missing_weights_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="testtime zoo train prm"):
        LearnedPRM(path=tmp_path)


def test_tinyprm2_options_train_with_the_ranking_loss(tmp_path):
    tiny = ReasonerConfig(n_layer=1, n_embd=32, n_head=2, batch_size=4, warmup=1, eval_every=2,
                          valid_problems=2, valid_samples=1, steps=2)
    train_reasoner(tmp_path / "policy", config=tiny, progress=False)
    info = train_prm(tmp_path / "prm", steps=2, policy_dir=tmp_path / "policy", problems_per_level=1,
                     samples=1, near_misses=1, mc_share=0.0, rank_weight=1.0, batch_size=4)
    assert info["rank_weight"] == 1.0 and info["near_misses"] == 1
    assert "pairwise_within_problem" in info


def test_tinyprm2_resumes_its_samples_and_training(tmp_path, monkeypatch):
    """A run killed after its samples and a checkpoint continues from them to the same weights."""
    from safetensors.torch import load_file

    import testtime.zoo.reasoner_prm as reasoner_prm

    monkeypatch.setattr(reasoner_prm, "CHECKPOINT_EVERY", 2)
    tiny = ReasonerConfig(n_layer=1, n_embd=32, n_head=2, batch_size=4, warmup=1, eval_every=2,
                          valid_problems=2, valid_samples=1, steps=2)
    train_reasoner(tmp_path / "policy", config=tiny, progress=False)
    args = dict(steps=4, policy_dir=tmp_path / "policy", problems_per_level=1, samples=1, near_misses=1,
                rank_weight=1.0, batch_size=4)
    first = train_prm(tmp_path / "prm", **args)
    weights = load_file(tmp_path / "prm" / "model.safetensors")
    assert (tmp_path / "prm" / "samples" / "train" / "arith-2.json").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        train_prm(tmp_path / "prm", **args)
    with pytest.raises(ValueError, match="another run"):
        train_prm(tmp_path / "prm", **{**args, "lr": 1e-4}, resume=True)

    def no_sampling(*_a, **_k):
        raise AssertionError("resumed samples must be read back, not re-sampled")

    monkeypatch.setattr("testtime.backends.local.LocalGenerator.generate", no_sampling)
    again = train_prm(tmp_path / "prm", **args, resume=True)  # from the step-2 checkpoint
    assert again["train_samples"] == first["train_samples"]
    resumed = load_file(tmp_path / "prm" / "model.safetensors")
    assert all(torch.equal(weights[k], resumed[k]) for k in weights)


def test_evaluation_does_not_depend_on_the_batch():
    from transformers import GPT2Config, GPT2ForTokenClassification

    from testtime.zoo.prm_data import labelled
    from testtime.zoo.reasoner_prm import evaluate
    from testtime.zoo.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    model = GPT2ForTokenClassification(GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=16, n_layer=1,
                                                  n_head=2, num_labels=1, pad_token_id=tokenizer.pad_token_id)).eval()
    task = get_task("arith")
    rows = []
    for p in task.generate(4, 3, seed=1) + task.generate(3, 7, seed=2):
        rows += [labelled(task, p, task.solve(p), "reference"), labelled(task, p, "1+1=2\nanswer: 2\n", "policy")]
    one, many = evaluate(model, tokenizer, rows, batch_size=1), evaluate(model, tokenizer, rows, batch_size=5)
    assert one == many and 0.0 <= one["pairwise_within_problem"] <= 1.0 and one["test_accuracy"] == 0.5
