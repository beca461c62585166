import json

import numpy as np
import pytest

from testtime.scale import get_strategy
from testtime.scale.agent_search import agent_search
from testtime.scale.config_search import search_config
from testtime.scale.configs import Config, tokens
from testtime.scale.difficulty import ABSOLUTE_EDGES, assign_bin, quantile_edges
from testtime.scale.optimal_policy import CalibrationRecord, Policy, calibrate, fit_policy
from testtime.tasks.base import Problem
from testtime.verifiers import get_verifier

from .conftest import ChainTask, ScriptedGenerator

WRONG = "1+1=3\nanswer: 99\n"


def chain_script(task: ChainTask):
    """Per problem, ``sum mod 4`` of four scripted samples are right (difficulty varies);
    continuations of a correct prefix finish it (right) or go wrong."""

    def script(prompt: str) -> list[str]:
        head, _, partial = prompt.partition("\n")
        nums = [int(x) for x in head.split()[1:]]
        right = task.solve(Problem("p", head + "\n", str(sum(nums)), "chain", len(nums)))
        if not right.startswith(partial):
            return [WRONG]
        k = sum(nums) % 4
        return [right[len(partial):]] * k + [WRONG] * (4 - k) if k else [WRONG]

    return script


def test_quantile_bins_split_scores_into_fifths():
    values = list(np.linspace(0.0, 1.0, 100))
    edges = quantile_edges(values, 5)
    assert edges == pytest.approx(np.quantile(values, [0.2, 0.4, 0.6, 0.8]).tolist())
    counts = np.bincount([assign_bin(v, edges) for v in values], minlength=5)
    assert counts.tolist() == [20, 20, 20, 20, 20]


def test_absolute_bins_follow_liu_thresholds():
    assert [assign_bin(p, ABSOLUTE_EDGES) for p in (0.0, 0.1, 0.3, 0.5, 0.51, 1.0)] == [0, 0, 1, 1, 2, 2]


def record(i, est, acc, cost):
    return CalibrationRecord(f"p{i}", est, est, acc, cost)


def test_per_bin_choice_is_the_most_accurate_config_within_budget():
    a, b, big = Config("majority", 2), Config("best-of-n", 2), Config("best-of-n", 8)
    records = [record(i, 0.1, {a.name: 1.0, b.name: 0.0, big.name: 1.0}, {a.name: 10, b.name: 20, big.name: 500})
               for i in range(5)]
    records += [record(i, 0.9, {a.name: 0.0, b.name: 1.0, big.name: 1.0}, {a.name: 10, b.name: 20, big.name: 500})
                for i in range(5, 10)]
    policy = fit_policy(records, [a, b, big], [100, 1000], verifier="oracle", estimate="verifier",
                        probes=2, binning="quantile", bins=2)
    low, high = assign_bin(0.1, policy.edges), assign_bin(0.9, policy.edges)
    assert low != high
    assert policy.config_for(low, 100) == a and policy.config_for(high, 100) == b
    # With room for it, the equally accurate but pricier config loses the tie only on cost.
    assert policy.config_for(low, 1000) == a and policy.config_for(high, 5000) == b
    with pytest.raises(ValueError, match="below every budget"):
        policy.config_for(low, 50)
    with pytest.raises(ValueError, match="below the cheapest"):
        fit_policy(records, [a, b], [5], verifier="oracle", estimate="verifier", probes=2)


def test_policy_round_trips_through_json_and_rejects_unknown_configs(tmp_path):
    a = Config("beam", 16, 4, 1)
    records = [record(i, i / 10, {a.name: 1.0}, {a.name: 10}) for i in range(10)]
    policy = fit_policy(records, [a], [64], verifier="prm", estimate="verifier", probes=2)
    path = tmp_path / "policy.json"
    policy.save(path)
    assert Policy.load(path) == policy
    data = json.loads(path.read_text())
    data["choice"]["0"]["64"]["method"] = "nope"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown configuration method 'nope'"):
        Policy.load(path)
    with pytest.raises(ValueError, match="must divide"):
        Config("beam", 6, 4)
    with pytest.raises(ValueError, match="takes no lookahead"):
        Config("revise", 4, 2, 1)


def test_calibration_and_test_splits_are_disjoint(task):
    test = task.generate(5, 3, seed=0)
    # The chain task has only 9 prompts per length: residues 5-7 are disjoint from 0-4.
    strategy = get_strategy("compute-optimal", budget=200, calibration=3, calib_seed=5)
    calib = strategy.calibration_split(task, test)
    assert len(calib) == 3 * len(task.levels)  # every level: the true one is never read
    assert not {p.prompt for p in calib} & {p.prompt for p in test}
    gen = ScriptedGenerator(chain_script(task))
    clash = get_strategy("compute-optimal", budget=200, calib_seed=0)
    with pytest.raises(ValueError, match="calibration split"):
        clash.solve(test, gen, task, get_verifier("oracle", task=task))
    assert gen.calls == []  # refused before any generation


def test_strategy_respects_the_budget_and_counts_probe_tokens(task, tmp_path):
    gen = ScriptedGenerator(chain_script(task))
    verifier = get_verifier("oracle", task=task)
    budget = 200
    path = tmp_path / "policy.json"
    strategy = get_strategy("compute-optimal", budget=budget, probes=2, calibration=3, calib_seed=6,
                            max_n=8, beam=False, bins=2, policy=str(path), seed=0)
    problems = task.generate(6, 3, seed=0)
    results = strategy.solve(problems, gen, task, verifier)
    assert path.exists() and Policy.load(path).verifier == "oracle"
    for res in results:
        assert 0 < res.meta["probe_tokens"] <= tokens(res.compute) <= budget
        assert len(res.candidates) >= 2  # the probes are part of the pool
    # Right answers come from the scripted solutions when any sample is right.
    assert sum(r.answer == p.answer for r, p in zip(results, problems, strict=True)) >= 3
    # A loaded policy is reused (no calibration calls) and keyed by its verifier.
    gen2 = ScriptedGenerator(chain_script(task))
    again = get_strategy("compute-optimal", budget=budget, probes=2, policy=str(path), seed=0)
    again.solve(problems[:1], gen2, task, verifier)
    assert len(gen2.calls) <= 2  # probes + extra samples only
    other = get_verifier("oracle", task=task)
    other.name = "prm"
    with pytest.raises(ValueError, match="fitted with verifier 'oracle'"):
        again.solve(problems[:1], ScriptedGenerator(chain_script(task)), task, other)


def test_calibration_with_beam_configs(task):
    gen = ScriptedGenerator(chain_script(task))
    verifier = get_verifier("oracle", task=task)
    problems = task.generate(3, 3, seed=7)
    records, configs = calibrate(problems, gen, task, verifier, max_n=4, probes=2, estimate="oracle",
                                 beam=True, options={"seed": 0, "max_tokens": 64, "step_tokens": 16})
    names = {c.name for c in configs}
    assert {"beam/n=4,w=4,la=1", "beam/n=4,w=4,la=3", "beam/n=4,w=2,la=0"} <= names
    for r in records:
        assert set(r.accuracy) == names and all(r.cost[n] > 0 for n in names)
    result = search_config(records, configs, budget=10_000, search_budget=10**9)
    best_acc = max(np.mean([r.accuracy[c.name] for r in records]) for c in configs)
    assert result.best_score == pytest.approx(best_acc)


def test_agent_search_improves_monotonically_and_stops_at_its_budget():
    def evaluate(n):
        return -((n - 12) ** 2), 1.0

    def step(n):
        return [n + 1, n - 1]

    short = agent_search([0], evaluate, step, budget=5)
    assert len(short.trace) == 5 and short.spent == 5
    best = [s.best_score for s in short.trace]
    assert best == sorted(best) and best[-1] > best[0]
    full = agent_search([0], evaluate, step, budget=100)
    assert full.best == 12 and full.spent < 100  # the queue ran dry before the budget


@pytest.mark.parametrize(
    "options, message",
    [
        ({"budget": 0}, "budget must be a positive integer"),
        ({"budget": -5}, "budget must be a positive integer"),
        ({"binning": "thirds"}, "unknown binning"),
        ({"estimate": "vibes"}, "unknown difficulty estimate"),
        ({"probes": 9, "max_n": 8}, "probes"),
    ],
)
def test_bad_options_fail_before_generation(options, message):
    with pytest.raises(ValueError, match=message):
        get_strategy("compute-optimal", **options)


def test_agent_search_rejects_bad_budget():
    with pytest.raises(ValueError, match="search budget"):
        agent_search([1], lambda c: (0.0, 1.0), lambda c: [], budget=0)


def test_revision_configurations_are_calibrated(task):
    gen = ScriptedGenerator(chain_script(task))
    verifier = get_verifier("oracle", task=task)
    records, configs = calibrate(task.generate(2, 3, seed=7), gen, task, verifier, max_n=4, probes=2,
                                 estimate="verifier", beam=False, revise=True,
                                 options={"seed": 0, "max_tokens": 64})
    revise = [c for c in configs if c.method == "revise"]
    assert {c.name for c in revise} == {"revise/n=2,chains=1", "revise/n=4,chains=1",
                                        "revise/n=4,chains=2", "revise/n=4,chains=4"}
    for r in records:  # a revision chain costs at least one attempt's tokens
        assert all(r.cost[c.name] > r.cost["majority/n=2"] / 2 for c in revise)


def test_agent_tts_runs_one_searched_configuration_on_every_problem(task):
    gen = ScriptedGenerator(chain_script(task))
    verifier = get_verifier("oracle", task=task)
    strategy = get_strategy("agent-tts", budget=400, calibration=2, calib_seed=6, max_n=4, beam=False,
                            max_tokens=64)
    problems = task.generate(3, 3, seed=0)
    results = strategy.solve(problems, gen, task, verifier)
    [found] = strategy.found.values()
    assert {r.meta["config"] for r in results} == {found.best.name}
    assert found.best_score >= 0 and found.spent > 0
    assert strategy.labels(verifier) == "oracle-verifier"
    with pytest.raises(ValueError, match="below the cheapest"):
        get_strategy("agent-tts", budget=1, calibration=2, calib_seed=6, max_n=4, beam=False).solve(
            problems, ScriptedGenerator(chain_script(task)), task, verifier)


def test_the_oracle_difficulty_estimate_is_labelled(task):
    prm_like = get_verifier("oracle", task=task)
    prm_like.reads_labels = False  # stands in for a learned verifier
    assert get_strategy("compute-optimal").labels(prm_like) == "none"
    assert get_strategy("compute-optimal", estimate="oracle").labels(prm_like) == "gold-difficulty"
    both = get_strategy("compute-optimal", estimate="oracle").labels(get_verifier("oracle", task=task))
    assert both == "oracle-verifier+gold-difficulty"


def test_relative_verifiers_are_refused(task):
    judge = get_verifier("judge", task=task, generator=ScriptedGenerator(lambda p: ["verdict: A"]),
                         mode="pairwise")
    for name in ("compute-optimal", "agent-tts"):
        with pytest.raises(ValueError, match="relative"):
            get_strategy(name).check(task, ScriptedGenerator({}), judge)


def test_a_replaced_policy_file_changes_the_strategys_state_identity(tmp_path):
    # The harness keys stored results by this digest: a policy refitted at the same
    # path must be recomputed, not resumed to results made with the old one.
    a, b = Config("majority", 2), Config("best-of-n", 2)
    records = [record(i, 0.1, {a.name: 1.0, b.name: 0.0}, {a.name: 10, b.name: 20}) for i in range(4)]
    records += [record(i, 0.9, {a.name: 0.0, b.name: 1.0}, {a.name: 10, b.name: 20}) for i in range(4, 8)]
    path = tmp_path / "policy.json"
    assert get_strategy("compute-optimal", budget=64, policy=str(path)).state_identity() is None
    fit_policy(records, [a, b], [64], verifier="prm", estimate="verifier", probes=2, bins=2).save(path)
    first = get_strategy("compute-optimal", budget=64, policy=str(path)).state_identity()
    assert first == get_strategy("compute-optimal", budget=64, policy=str(path)).state_identity()
    fit_policy(records, [a], [64], verifier="prm", estimate="verifier", probes=2, bins=2).save(path)
    assert get_strategy("compute-optimal", budget=64, policy=str(path)).state_identity() not in (None, first)
