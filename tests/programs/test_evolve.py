"""The evolve loop with scripted generators: hostile and broken proposals are scored
as failed with their reason while the loop goes on; a killed run resumes to exactly
the uninterrupted result."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from killing import Killed, killed_after

from testtime.backends.base import Completion, GenerationResult, Generator, SamplingParams, Usage
from testtime.programs.database import DatabaseConfig
from testtime.programs.evolve import PENALTY, Evolution, EvolveConfig, shaped_reward
from testtime.programs.mutate import MutationGenerator
from testtime.programs.problems import CirclePacking, FirstAutocorrelation
from testtime.programs.prompt import parent_code
from testtime.programs.report import write_report
from testtime.programs.sandbox import Limits

LIMITS = Limits(wall_s=1, cpu_s=1, memory_mb=1024, output_kb=256)
FENCE = "```python\n{}\n```"


class Scripted(Generator):
    """Answers prompt i of call c with ``answers[c][i]`` (``None``: the parent's own code)."""

    name = "scripted"

    def __init__(self, answers: list[list[str | None]]) -> None:
        self.answers, self.calls, self.prompts = answers, 0, []

    def generate(self, prompts: Sequence[str], params: SamplingParams, **_) -> GenerationResult:
        row = self.answers[self.calls]
        self.calls += 1
        self.prompts += prompts
        texts = [FENCE.format(parent_code(p)) if a is None else a for p, a in zip(prompts, row, strict=True)]
        return GenerationResult([[Completion(t, "stop", 1)] for t in texts], Usage(1, 1, 1))


def test_hostile_and_broken_proposals_fail_with_reasons_and_the_loop_goes_on(tmp_path):
    better = FENCE.format("def run():\n    return [1.0, 2.0]\n")  # bound 16/9
    answers = [[FENCE.format("def run():\n    while True: pass\n"),
                FENCE.format("def run():\n    return open('/etc/passwd').read()\n"),
                "I would rather not write code.",
                None],
               [FENCE.format("def run():\n    return [-1.0, 2.0]\n"),
                FENCE.format("def run():\n    import os\n    os.system('touch /tmp/x')\n"),
                better,
                FENCE.format("def run():\n    print('x' * 10**7)\n")]]
    gen = Scripted(answers)
    config = EvolveConfig(generations=2, batch=4, database=DatabaseConfig(num_islands=2))
    result = Evolution(FirstAutocorrelation(), gen, tmp_path, config, LIMITS).run()
    assert result.best.score == pytest.approx(16 / 9) and result.curve[0] == 2.0
    programs = {p["id"]: p for p in json.loads((tmp_path / "state.json").read_text())[
        "database"]["programs"]}
    expected = {"g1-0": ("timeout", "cpu limit"), "g1-1": ("blocked",), "g1-2": ("format",),
                "g1-3": ("lazy",), "g2-0": ("invalid: heights must be >= 0",),
                "g2-1": ("blocked",), "g2-3": ("output limit",)}
    for pid, reasons in expected.items():
        assert programs[pid]["reason"].startswith(reasons), (pid, programs[pid]["reason"])
        assert programs[pid]["score"] is None
    assert programs["g1-2"]["reward"] == PENALTY["format"] and programs["g1-3"]["reward"] == PENALTY["lazy"]
    assert programs["g2-0"]["reward"] == PENALTY["invalid"] and programs["g1-1"]["reward"] == PENALTY["execution"]
    assert programs["g2-2"]["reward"] == pytest.approx(-16 / 9)  # a valid program: its fitness
    assert FirstAutocorrelation().description in gen.prompts[0] and "(score 2)" in gen.prompts[0]
    summary = write_report(FirstAutocorrelation(), tmp_path)
    assert summary["best_score"] == pytest.approx(16 / 9) and summary["outcomes"]["valid"] == 2
    assert (tmp_path / "best.py").read_text().startswith("def run():")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def _comparable(folder) -> dict:
    state = json.loads((folder / "state.json").read_text())
    for p in state["database"]["programs"]:
        p["details"].pop("wall_s")
    return state


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    config = EvolveConfig(generations=3, batch=2, database=DatabaseConfig(num_islands=2, migration_interval=2))
    problem = FirstAutocorrelation()
    whole = Evolution(problem, MutationGenerator(), tmp_path / "whole", config, LIMITS).run()
    with pytest.raises(Killed):  # killed in generation 2, after generation 1's checkpoint
        Evolution(problem, killed_after(MutationGenerator(), 1), tmp_path / "split", config, LIMITS).run()
    resumed = Evolution(problem, MutationGenerator(), tmp_path / "split", config, LIMITS).run()
    assert resumed.curve == whole.curve and resumed.best.code == whole.best.code
    assert _comparable(tmp_path / "split") == _comparable(tmp_path / "whole")
    assert whole.curve == sorted(whole.curve, reverse=True)  # best so far never worsens


def test_resuming_with_other_settings_is_refused(tmp_path):
    config, problem = EvolveConfig(generations=1, batch=1), FirstAutocorrelation()
    Evolution(problem, MutationGenerator(), tmp_path, config, LIMITS).run()
    with pytest.raises(ValueError, match="batch: 1 there, 2 now"):
        Evolution(problem, MutationGenerator(), tmp_path,
                  EvolveConfig(generations=1, batch=2), LIMITS).run()
    with pytest.raises(ValueError, match="problem: 'autocorrelation' there"):
        Evolution(CirclePacking(), MutationGenerator(), tmp_path, config, LIMITS).run()
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable evolve state"):
        Evolution(problem, MutationGenerator(), tmp_path, config, LIMITS).run()


def test_reward_shaping_maps_the_score_range_to_unit_interval():
    cp, ac = CirclePacking(), FirstAutocorrelation()  # [2.0, 2.636] up, [1.5, 2.0] down
    assert shaped_reward(cp, 1.0, 1.0) == 0.0 and shaped_reward(cp, 3.0, 1.0) == 1.0
    assert shaped_reward(cp, 2.318, 1.0) == pytest.approx(0.5)
    assert shaped_reward(cp, 2.318, 2.0) == pytest.approx(0.25)
    assert shaped_reward(ac, 2.0, 1.0) == 0.0 and shaped_reward(ac, 1.5, 1.0) == 1.0
