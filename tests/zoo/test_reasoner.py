import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from testtime.tasks import get_task
from testtime.tasks.base import extract_final_answer, split_steps
from testtime.tasks.synthetic import parse_step
from testtime.tasks.trace import parse_line
from testtime.zoo import reasoner_path
from testtime.zoo.batches import training_batch
from testtime.zoo.reasoner import ReasonerConfig, export_checkpoint, train_reasoner
from testtime.zoo.reasoner_data import make_example
from testtime.zoo.reasoner_sampling import pass_at_k, sample
from testtime.zoo.tokenizer import build_tokenizer

TINY = dict(n_layer=1, n_embd=32, n_head=2, n_positions=512, batch_size=8, warmup=2, lr=3e-3,
            eval_every=4, valid_problems=4, valid_samples=1)


@pytest.fixture(scope="module")
def shipped():
    path = reasoner_path()
    if not (path / "config.json").exists():
        pytest.skip("TinyReasoner weights are not shipped in this checkout")
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_shipped_weights_load_and_are_small(shipped):
    model, tok = shipped
    assert model.config.model_type == "gpt2"
    assert (reasoner_path() / "model.safetensors").stat().st_size <= 10 * 2**20
    assert model.config.eos_token_id == tok.eos_token_id
    assert "Quality" in (reasoner_path() / "README.md").read_text()


def test_shipped_model_writes_solutions_for_easy_arith(shipped):
    # The shipped model is under-trained (see its card): it has learned the solution
    # format and to copy the first operation, not yet reliable arithmetic.
    model, tok = shipped
    task = get_task("arith")
    problems = task.generate(20, 2, seed=0)
    outs = sample(model, tok, [p.prompt for p in problems], n=1, temperature=0.0, max_new_tokens=120)
    formatted = copied = 0
    for p, (text,) in zip(problems, outs, strict=True):
        lines = split_steps(text)
        steps = [parse_step(line) for line in lines]
        # every line a step or a behaviour line (check / plan / undo ...) of testtime.tasks.trace
        well_formed = all(s is not None or parse_line(x) is not None for s, x in zip(steps, lines, strict=True))
        formatted += bool(steps) and well_formed and extract_final_answer(text) is not None
        start, ops = task.parse(p)
        copied += bool(steps) and steps[0] is not None and (
            (steps[0].left, steps[0].op, steps[0].right) == (start, *ops[0])
        )
    assert formatted >= 16 and copied >= 12, outs


def test_sampler_is_seeded_and_left_padding_is_harmless(shipped):
    model, tok = shipped
    prompts = ["arith: 5 +3\n", "arith: 12 +30 *2 -7\n"]
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = sample(model, tok, prompts, n=3, generator=g(), max_new_tokens=50)
    assert a == sample(model, tok, prompts, n=3, generator=g(), max_new_tokens=50)
    # greedy on a batch equals greedy alone (positions and masks respect the padding)
    alone = sample(model, tok, prompts[:1], n=1, temperature=0.0, max_new_tokens=50)
    batch = sample(model, tok, prompts, n=1, temperature=0.0, max_new_tokens=50)
    assert batch[0] == alone[0]


def test_sampler_stops_at_the_context_window(shipped):
    model, tok = shipped
    window = model.config.max_position_embeddings
    long = "arith: 1 +1\n" * ((window - 8) // len(tok("arith: 1 +1\n").input_ids))
    width = len(tok(long).input_ids)
    (out,), _ = sample(model, tok, [long, "arith: 5 +3\n"], n=1, temperature=0.0, max_new_tokens=400)
    assert len(tok(out[0]).input_ids) <= window - width + 1  # no position past the window


def test_pass_at_k():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_mixture_is_deterministic_and_masks_cues():
    examples = [make_example(0, i) for i in range(300)]
    assert examples == [make_example(0, i) for i in range(300)]
    kinds = {e.kind for e in examples}
    assert kinds == {"plain", "wait", "revise"}
    for e in examples:
        assert e.target.endswith("\n") and "answer: " in e.target
        assert "wait" not in e.target and "revise" not in e.target
        if e.kind == "wait":
            assert e.context.endswith("wait\n") and "answer:" not in e.context
        if e.kind == "revise":
            assert e.context.split("\n")[-2].startswith("revise")
    tok = build_tokenizer()
    ids, labels, mask = training_batch(tok, ReasonerConfig(**TINY), seed=0, step=5)
    assert ids.shape == labels.shape == mask.shape and (labels[mask == 0] == -100).all()
    assert (labels != -100).sum() < mask.sum()  # prompts are not trained on


def test_training_lowers_loss_and_resumes_identically(tmp_path):
    torch.set_num_threads(1)
    full = train_reasoner(tmp_path / "a", steps=8, config=ReasonerConfig(**TINY), progress=False)
    losses = [h["loss"] for h in full["history"]]
    assert losses[1] < losses[0]
    assert (tmp_path / "a" / "model.safetensors").exists() and (tmp_path / "a" / "README.md").exists()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a")
    assert model.config.n_layer == 1

    # a run stopped after its first checkpoint, then resumed, ends where the full run ended
    train_reasoner(tmp_path / "b", steps=8, config=ReasonerConfig(**TINY), progress=False,
                   stop_after=4)
    partial = export_checkpoint(tmp_path / "b", tmp_path / "c")  # the best model so far
    assert partial["steps_trained"] == 4 and not partial["complete"]
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "c").config.n_embd == 32
    resumed = train_reasoner(tmp_path / "b", steps=8, config=ReasonerConfig(**TINY), progress=False,
                             resume=True)
    assert resumed["history"] == full["history"]
    info = json.loads((tmp_path / "b" / "training.json").read_text())
    assert info["steps_trained"] == 8
    with pytest.raises(ValueError, match="another configuration"):
        train_reasoner(tmp_path / "b", steps=9, config=ReasonerConfig(**{**TINY, "lr": 1e-3}),
                       progress=False, resume=True)
    longer = train_reasoner(tmp_path / "b", steps=10, config=ReasonerConfig(**TINY), progress=False,
                            resume=True)  # a finished run can be extended
    assert longer["steps_trained"] == 10 and longer["history"][:2] == full["history"][:2]
    assert longer["schedule_changes"] == [{"at_step": 8, "from": 8, "to": 10}]
    assert "Resumed at step 8 with `--steps 10`" in (tmp_path / "b" / "README.md").read_text()
