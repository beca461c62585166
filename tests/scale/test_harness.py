import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest

from testtime.registry import UnknownName
from testtime.scale.harness import scale
from testtime.scale.plan import make_plan
from testtime.scale.subsample import subsets
from testtime.scale.summary import bootstrap_ci
from testtime.verifiers import get_verifier

from .conftest import ScriptedGenerator


def texts_for(task):
    """Pools that cycle right, wrong(+1), right, wrong(+2), wrong(+1) per problem."""

    def script(prompt):
        p = next(p for p in task.generate(20, 3, seed=0) if p.prompt == prompt)
        right = task.solve(p)
        a = int(p.answer)
        return [right, f"x\nanswer: {a + 1}\n", right, f"y\nanswer: {a + 2}\n", f"z\nanswer: {a + 1}\n"]

    return script


def test_subsets_enumerate_or_sample():
    rng = np.random.default_rng(0)
    assert subsets(4, 2, 16, rng) == [list(c) for c in itertools.combinations(range(4), 2)]
    drawn = subsets(16, 4, 8, rng)
    assert len(drawn) == 8 and all(len(set(s)) == 4 and s == sorted(s) for s in drawn)
    assert subsets(5, 5, 16, rng) == [[0, 1, 2, 3, 4]]
    assert subsets(64, 1, 8, rng) == [[i] for i in range(64)]  # pass@1 from every sample
    with pytest.raises(ValueError):
        subsets(4, 5, 16, rng)


def test_bootstrap_ci_contains_the_mean():
    rng = np.random.default_rng(1)
    values = rng.random(40) < 0.3
    low, high = bootstrap_ci(values, seed=0)
    assert low <= values.mean() <= high and high - low > 0.1
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)


def test_subsampled_majority_matches_brute_force(task, tmp_path):
    gen = ScriptedGenerator(texts_for(task))
    out = scale(
        task, gen, ["majority", "sample", "best-of-n"], [1, 2, 3, 5], tmp_path,
        verifier=get_verifier("oracle", task=task), difficulties=[3], limit=6,
        max_subsets=1000, show_progress=False,
    )
    # One shared pool of 5 per problem; all six pools sampled in one batched call.
    assert len(gen.calls) == 1 and len(gen.calls[0][0]) == 6 and gen.calls[0][1].n == 5
    rows = {(r["strategy"], r["n"]): r for r in out.rows}
    assert ("sample", 1) in rows and ("sample", 2) not in rows
    assert rows[("sample", 1)]["accuracy"] == pytest.approx(0.4)
    # Brute force over all k-subsets of [R, W1, R, W2, W1] (ties: first seen wins).
    answers = ["R", "W1", "R", "W2", "W1"]
    for k in (1, 2, 3, 5):
        wins = []
        for idx in itertools.combinations(range(5), k):
            counts = Counter(answers[i] for i in idx)
            top = max(counts.values())
            wins.append(next(answers[i] for i in idx if counts[answers[i]] == top) == "R")
        assert rows[("majority", k)]["accuracy"] == pytest.approx(np.mean(wins)), k
        # the oracle scores exactly the right solutions 1: BoN@k = pass@k
        pass_k = 1 - math.comb(3, k) / math.comb(5, k)
        assert rows[("best-of-n", k)]["accuracy"] == pytest.approx(pass_k)
        assert rows[("best-of-n", k)]["coverage"] == pytest.approx(pass_k)
        pool_tokens = np.mean(
            [sum(map(len, texts_for(task)(p.prompt))) for p in task.generate(6, 3, 0)]
        )
        assert rows[("majority", k)]["generated_tokens"] == pytest.approx(pool_tokens * k / 5)
    for r in out.rows:
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(out.rows))
    assert {"strategy", "n", "difficulty", "accuracy", "ci_low", "ci_high", "generated_tokens",
            "prompt_tokens", "verifier_tokens", "flops", "model_calls", "wall_s"} <= set(saved["rows"][0])
    lines = (tmp_path / "problems.jsonl").read_text().splitlines()
    assert len(lines) == 6 * (4 + 1 + 4)
    assert (tmp_path / "accuracy_vs_n.png").read_bytes()[:4] == b"\x89PNG"
    assert "accuracy_vs_flops.png" in out.report.read_text()


def test_interrupted_run_writes_nothing_and_resumes(task, tmp_path):
    gen = ScriptedGenerator(texts_for(task))
    real = gen.generate
    budget = {"left": 3}

    def flaky(*args, **kwargs):
        if budget["left"] == 0:
            raise KeyboardInterrupt
        budget["left"] -= 1
        return real(*args, **kwargs)

    gen.generate = flaky
    with pytest.raises(KeyboardInterrupt):
        scale(task, gen, ["majority"], [4], tmp_path, difficulties=[3], limit=6,
              batch_samples=4, show_progress=False)
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "report.md").exists()
    budget["left"] = 100
    scale(task, gen, ["majority"], [4], tmp_path, difficulties=[3], limit=6,
          batch_samples=8, show_progress=False)
    assert [len(prompts) for prompts, _ in gen.calls] == [1, 1, 1, 2, 1]  # 3 stored, then the 3 missing ones, two per call
    assert (tmp_path / "results.json").exists()
    # a finished run is not regenerated, and other strategies reuse its pools
    scale(task, gen, ["majority", "sample"], [4], tmp_path, difficulties=[3], limit=6, show_progress=False)
    assert len(gen.calls) == 5


def test_plan_validates_before_generating(task):
    gen = ScriptedGenerator(texts_for(task))
    with pytest.raises(ValueError, match="budget"):
        make_plan(task, gen, ["majority"], [4, 0])
    with pytest.raises(UnknownName, match="valid: .*majority"):
        make_plan(task, gen, ["majority", "nope"], [4])
    with pytest.raises(ValueError, match="needs a verifier"):
        make_plan(task, gen, ["best-of-n"], [4])
    with pytest.raises(ValueError, match="twice"):
        make_plan(task, gen, ["majority", "majority"], [4])
    assert gen.calls == []


def test_per_budget_strategies_run_once_per_budget(task, tmp_path):
    def script(prompt):
        p = next(p for p in task.generate(20, 3, seed=0) if p.prompt == prompt)
        return ["1+1=2\n" * 5 + "answer: 0\n", task.solve(p)]

    gen = ScriptedGenerator(script)
    out = scale(task, gen, ["ffs", "greedy"], [1, 2], tmp_path, difficulties=[3], limit=4,
                show_progress=False)
    rows = {(r["strategy"], r["n"]): r for r in out.rows}
    assert set(rows) == {("ffs", 1), ("ffs", 2), ("greedy", 1)}
    assert [p.n for _, p in gen.calls].count(2) == 4  # ffs@2: one lock-step call per problem
    # ffs@2 wins with the short right solution; its cancelled partner costs as many tokens
    assert rows[("ffs", 2)]["accuracy"] == 1.0
    solved = [len(task.solve(p)) for p in task.generate(4, 3, 0)]
    assert rows[("ffs", 2)]["generated_tokens"] == pytest.approx(2 * np.mean(solved))
    assert rows[("ffs", 2)]["coverage"] is None
    assert rows[("greedy", 1)]["accuracy"] == 0.0


def test_every_strategy_sees_the_same_subsets_at_equal_n(task, tmp_path, monkeypatch):
    """Paired comparisons: majority and best-of-n select from identical k-subsets."""
    from testtime.scale import best_of_n, majority

    seen: dict[str, list[list[str]]] = {"majority": [], "best-of-n": []}
    for module, cls, name in ((majority, "Majority", "majority"), (best_of_n, "BestOfN", "best-of-n")):
        strategy = getattr(module, cls)
        real = strategy.select

        def spy(self, pool, problem, t, _real=real, _name=name):
            seen[_name].append([c.text for c in pool])
            return _real(self, pool, problem, t)

        monkeypatch.setattr(strategy, "select", spy)
    out = scale(
        task, ScriptedGenerator(texts_for(task)), ["majority", "best-of-n"], [2, 3], tmp_path,
        verifier=get_verifier("oracle", task=task), difficulties=[3], limit=4, max_subsets=3,
        show_progress=False,
    )
    assert seen["majority"] and seen["majority"] == seen["best-of-n"]
    rows = {(r["strategy"], r["n"]): r for r in out.rows}
    bon = rows[("best-of-n", 3)]
    assert bon["baseline"] == "majority" and rows[("majority", 3)]["diff"] is None
    assert bon["diff"] == pytest.approx(bon["accuracy"] - rows[("majority", 3)]["accuracy"])
    assert bon["diff_low"] <= bon["diff"] <= bon["diff_high"]
    # the oracle makes best-of-n an upper bound, and the rows say so
    assert bon["labels"] == "oracle-verifier" and rows[("majority", 3)]["labels"] == "none"


def test_pool_budgets_charge_the_prompt_once_and_a_share_of_the_samples(task, tmp_path):
    out = scale(task, ScriptedGenerator(texts_for(task)), ["majority"], [1, 5], tmp_path,
                difficulties=[3], limit=2, show_progress=False)
    rows = {r["n"]: r for r in out.rows}
    prompt = np.mean([len(p.prompt) for p in task.generate(2, 3, 0)])
    for n in (1, 5):
        assert rows[n]["prompt_tokens"] == pytest.approx(prompt)  # one call with n = k
        assert rows[n]["charged_tokens"] == pytest.approx(prompt + rows[n]["generated_tokens"])
        assert rows[n]["computed_tokens"] == rows[n]["charged_tokens"]  # no prefix cache here
        assert rows[n]["flops"] == pytest.approx(2 * 1000 * rows[n]["computed_tokens"])


def test_compute_counts_prefix_cache_hits_as_charged_not_computed():
    from dataclasses import dataclass

    from testtime.backends.base import Usage
    from testtime.scale.base import Compute

    @dataclass
    class CachedUsage(Usage):
        cached_tokens: int = 0

    compute = Compute()
    # 20 prompt tokens processed, 80 reused from the prefix cache, 10 generated
    compute.add_usage(CachedUsage(20, 10, 1, cached_tokens=80), ScriptedGenerator({}))
    assert compute.prompt_tokens == 100 and compute.cached_tokens == 80
    assert compute.charged_tokens == 110 and compute.computed_tokens == 30
    assert compute.policy_flops == 2 * 1000 * 30
    assert Compute.from_dict(compute.to_dict()) == compute


def test_a_pairwise_judge_scores_each_budget_and_is_charged_k_squared(task, tmp_path):
    """J1-style pairwise judging is relative to the set judged: best-of-n@k runs per
    budget and its judge prompts are k(k - 1) (both orders of every pair)."""
    judge_model = ScriptedGenerator(lambda prompt: ["verdict: A"])
    judge = get_verifier("judge", task=task, generator=judge_model, mode="pairwise", judgments=1)
    assert judge.relative
    out = scale(task, ScriptedGenerator(texts_for(task)), ["best-of-n", "majority"], [2, 4], tmp_path,
                verifier=judge, difficulties=[3], limit=2, show_progress=False)
    prompts = [len(p) for p, _ in judge_model.calls]
    assert sorted(prompts) == [2, 2, 12, 12]  # per problem: 2·1 prompts at k = 2, 4·3 at k = 4
    rows = {(r["strategy"], r["n"]): r for r in out.rows}
    ratio = rows[("best-of-n", 4)]["verifier_tokens"] / rows[("best-of-n", 2)]["verifier_tokens"]
    assert 4.5 < ratio < 7.5  # ~ (4·3)/(2·1) = 6, prompts differ in length
    assert rows[("majority", 4)]["verifier_tokens"] == 0  # majority never asks the judge


def test_paired_differences_only_where_n_counts_samples():
    from testtime.scale.summary import Record, summarise

    def rec(strategy, pid, acc):
        cost = dict.fromkeys(("generated_tokens", "prompt_tokens", "cached_tokens", "verifier_tokens",
                              "charged_tokens", "computed_tokens", "flops", "model_calls", "wall_s"), 1.0)
        return Record(strategy, 16, 3, pid, "6", "6", acc, None, 1, cost)

    records = [rec(s, f"p{i}", float(i % 2)) for s in ("majority", "best-of-n", "budget-forcing")
               for i in range(6)]
    rows = {r["strategy"]: r for r in summarise(records, comparable={"majority", "best-of-n"})}
    assert rows["best-of-n"]["diff"] == 0.0 and rows["best-of-n"]["baseline"] == "majority"
    assert rows["budget-forcing"]["diff"] is None  # N = 16 thinking tokens, not 16 samples
