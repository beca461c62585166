"""Dynamic Cheatsheet: the curator loop with a scripted generator (DC-Cu, DC-RS),
retrieval, and the example memory's verification."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from testtime.backends.base import Completion, GenerationResult, Generator, SamplingParams, Usage
from testtime.learn.cheatsheet import CuratorLoop, DCConfig, parse_cheatsheet
from testtime.learn.cheatsheet_examples import ExampleMemory
from testtime.learn.policy import Policy
from testtime.learn.retrieval import hashed_trigrams, top_k
from testtime.tasks import get_task
from testtime.verifiers.base import Scores, Verifier


class Scripted(Generator):
    """Answers 'answer: <n>' to solver prompts; the curator reply is scripted per call."""

    name = "scripted"

    def __init__(self, curator_replies: Sequence[str]) -> None:
        self.replies = list(curator_replies)
        self.prompts: list[str] = []

    def generate(self, prompts, params: SamplingParams, *, cancel=None, on_finish=None):
        (prompt,) = prompts
        self.prompts.append(prompt)
        if prompt.startswith("You maintain"):
            text = self.replies.pop(0)
        else:
            text = "1+1=2\nanswer: 2"
        return GenerationResult([[Completion(text, "stop", 5)] * params.n], Usage(10, 5, 1))


def test_parse_cheatsheet_takes_the_last_block_or_none():
    assert parse_cheatsheet("x <cheatsheet> a </cheatsheet> y <cheatsheet>b\n</cheatsheet>") == "b"
    assert parse_cheatsheet("no tags here") is None


def test_dc_cu_updates_memory_when_the_curator_parses_and_keeps_it_otherwise():
    task = get_task("arith")
    problems = task.generate(3, 2, 0)
    gen = Scripted(["<cheatsheet>add left to right</cheatsheet>", "garbage", "<cheatsheet>v2</cheatsheet>"])
    loop = CuratorLoop(gen, task, DCConfig(mode="curator", variant="cu"))
    out = [loop.step(p) for p in problems]
    assert [o["memory_parsed"] for o in out] == [True, False, True]
    assert [o["memory"] for o in out] == ["add left to right", "add left to right", "v2"]
    # the second question was answered with the first curated memory in its prompt
    assert "add left to right" in gen.prompts[2] and problems[1].prompt.strip() in gen.prompts[2]
    assert all(o["tokens"] == 30 for o in out)  # generator + curator calls
    # resume: replaying stored outcomes restores the memory
    fresh = CuratorLoop(gen, task, DCConfig(mode="curator"))
    for o in out:
        fresh.replay(o)
    assert fresh.state.memory == "v2" and len(fresh.state.history) == 3


def test_dc_rs_retrieves_the_most_similar_past_questions_before_answering():
    task = get_task("arith")
    problems = task.generate(5, 2, 0)
    gen = Scripted([f"<cheatsheet>m{i}</cheatsheet>" for i in range(5)])
    loop = CuratorLoop(gen, task, DCConfig(mode="curator", variant="rs"))
    for p in problems[:4]:
        loop.step(p)
    query = problems[4].prompt.strip()
    expected = top_k(hashed_trigrams(query), [hashed_trigrams(p.prompt.strip()) for p in problems[:4]], 3)
    loop.step(problems[4])
    curator_prompt = gen.prompts[-2]  # DC-RS curates first, then answers
    assert curator_prompt.startswith("You maintain") and f"Next question: {query}" in curator_prompt
    for i in range(4):
        assert (f"Past question: {problems[i].prompt.strip()}\n" in curator_prompt) == (i in expected)
    assert "m4" in gen.prompts[-1]  # the answer used the memory synthesised just before


def test_top_k_orders_by_cosine():
    assert top_k([1.0, 0.0], [[0.0, 1.0], [1.0, 0.1], [1.0, 1.0]], 2) == [1, 2]
    assert top_k([1.0], [], 3) == []


def test_example_memory_admits_by_the_oracle_only_when_asked_and_retrieves(tiny_dir):
    task = get_task("arith")
    cfg = DCConfig(examples=1, max_tokens=20, admit="oracle")
    assert cfg.labels == "oracle-verifier" and DCConfig().labels == "none"
    memory = ExampleMemory(Policy(tiny_dir), task, cfg)
    problem = task.generate(1, 3, 0)[0]
    gold = task.solve(problem)
    assert memory.admitted(problem, [gold]) == gold
    assert memory.admitted(problem, [gold.replace("=", "=1", 1)]) is None
    assert memory.admitted(problem, [gold.split("answer")[0]]) is None
    emb = memory.embed(problem.prompt)
    assert len(emb) == 32
    memory.replay({"added": {"prompt": problem.prompt, "solution": gold, "embedding": emb}})
    out = memory.step(task.generate(1, 3, 1)[0])
    assert out["retrieved"] == 1 and "base_answer" in out


def test_label_free_admission_by_prm_and_by_self_consistency(tiny_dir):
    task = get_task("arith")
    problem = task.generate(1, 3, 0)[0]
    gold = task.solve(problem)
    wrong = gold.replace("=", "=1", 1)
    default = ExampleMemory(Policy(tiny_dir), task, DCConfig())
    assert default.checker is not None and default.checker.name == "prm"  # label-free by default

    class StepScores(Verifier):  # scores a step by its arithmetic, as a trained PRM would
        name = "scripted-prm"

        def score(self, problem, solutions):
            return Scores([[0.9 if text == gold else 0.2] * 3 for text in solutions])

    by_prm = ExampleMemory(Policy(tiny_dir), task, DCConfig(admit_threshold=0.5), StepScores())
    assert by_prm.admitted(problem, [wrong, gold]) == gold
    assert by_prm.admitted(problem, [wrong]) is None
    vote = ExampleMemory(Policy(tiny_dir), task, DCConfig(admit="consistency", samples=3, admit_threshold=0.6))
    a, b = "answer: 5\n", "x\nanswer: 7\n"
    assert vote.admitted(problem, [a, b, a]) == a  # 2/3 agree
    assert vote.admitted(problem, [a, b, "no answer"]) is None  # 1/3 < 0.6
    with pytest.raises(ValueError, match="samples >= 2"):
        DCConfig(admit="consistency")


def test_config_checks():
    with pytest.raises(ValueError, match="mode"):
        DCConfig(mode="notes")
    with pytest.raises(ValueError, match="variant"):
        DCConfig(variant="xx")
