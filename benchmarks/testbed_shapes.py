"""Does the embedded testbed show the shapes test-time scaling has on real models? (issue 12)

    python benchmarks/testbed_shapes.py --model src/testtime/zoo/weights/tiny-reasoner \\
        --parts pool,beam,budget,refine,incontext --problems 100

- ``pool``: 64 samples per problem (T = 1) at the mid and the hardest level, each scored
  once by the PRM (by each of several PRMs on the same samples: ``--prm A,B``); pass@1, majority@N, best-of-N and PRM-weighted majority at
  N = 1..64 (mean over random subsets of the pool: the strategies are functions of
  i.i.d. samples), bootstrap CIs over problems, and the PRM's within-problem
  pairwise accuracy (right vs wrong solution of the same problem).
- ``beam``: the library's PRM beam search vs best-of-N at N = 4, 8, 16 (hardest level).
- ``budget``: budget forcing (wait cues fill the budget) vs plain truncation at 1, 2
  and 3 derivations' worth of thinking tokens (a derivation's length is measured on
  validation-seed reference solutions, never on test problems).
- ``refine``: self-refine accuracy per turn without a verifier (bare ``revise``) and
  with PRM feedback (``revise step j``).
- ``incontext``: pass@1 with 0 vs 2 solved examples retrieved from a bank of
  validation-seed reference solutions (levels 4-8).

Test problems use the held-out test seed; nothing here is tuned (the PRM threshold
0.5 and the "last" aggregation are the library defaults). Each part's rows are
cached under ``--runs`` (a rerun skips finished parts); the summary goes to
``--out`` (JSON, written atomically).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from testtime.backends.base import SamplingParams
from testtime.backends.local import LocalGenerator
from testtime.scale import get_strategy
from testtime.scale.r2_mcts import SolutionBank
from testtime.store import atomic_write_json
from testtime.tasks import get_task
from testtime.verifiers.prm import LearnedPRM, prm_path
from testtime.zoo.reasoner_data import TEST_SEED, VALID_SEED

RESULTS = Path(__file__).parent / "results"
NS = (1, 2, 4, 8, 16, 32, 64)
SUBSETS = 32


def bootstrap(values: list[float], seed: int = 0, reps: int = 1000) -> tuple[float, float, float]:
    """(mean, 2.5%, 97.5%) of the mean over problems."""
    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), (reps, len(arr)))].mean(axis=1)
    return float(arr.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def row(name: str, n: int, values: list[float], **extra: Any) -> dict[str, Any]:
    mean, lo, hi = bootstrap(values)
    return {"method": name, "n": n, "accuracy": round(mean, 4), "ci": [round(lo, 4), round(hi, 4)],
            "problems": len(values), **extra}


def pick(keys: list[str | None], correct: list[bool], weights: list[float] | None, rng: random.Random) -> bool:
    """Correctness of the (weighted) vote over ``keys``; ties broken at random."""
    tally: dict[str, float] = {}
    for i, k in enumerate(keys):
        if k is not None:
            tally[k] = tally.get(k, 0.0) + (1.0 if weights is None else weights[i])
    if not tally:
        return False
    top = max(tally.values())
    winner = rng.choice(sorted(k for k, v in tally.items() if v == top))
    return any(c for k, c in zip(keys, correct, strict=True) if k == winner)


def pool_part(args, task, gen: LocalGenerator, prms: dict[str, LearnedPRM], level: int) -> list[dict[str, Any]]:
    """One pool of samples per problem, scored by every PRM in ``prms`` (like with like)."""
    problems = task.generate(args.problems, level, seed=TEST_SEED)
    params = SamplingParams(n=args.samples, temperature=1.0, max_tokens=args.max_tokens, seed=args.seed)
    outs = gen.generate([p.prompt for p in problems], params).completions
    graded = []  # what does not depend on the PRM, once
    for p, cands in zip(problems, outs, strict=True):
        texts = [c.text for c in cands]
        answers = [task.extract_answer(t) for t in texts]
        graded.append({"keys": [None if a is None else task.answer_key(p, a) for a in answers],
                       "correct": [task.is_correct(p, t) for t in texts],
                       "tokens": [c.num_tokens for c in cands]})
    parts = []
    for name, prm in prms.items():
        per = []
        for p, cands, q in zip(problems, outs, graded, strict=True):
            steps, _ = prm.score_pairs([(p.prompt, c.text) for c in cands])
            per.append({**q, "score": [s[-1] if s else 0.0 for s in steps]})
        parts.append({"prm": name, **pool_curves(args, per, level)})
    return parts


def pool_curves(args, per: list[dict[str, Any]], level: int) -> dict[str, Any]:
    rng = random.Random(args.seed)
    rows = []
    for n in [n for n in NS if n <= args.samples]:
        acc: dict[str, list[float]] = {"majority": [], "best-of-n": [], "weighted": [], "coverage": []}
        for q in per:
            reps = 1 if n == args.samples else SUBSETS
            got: dict[str, float] = dict.fromkeys(acc, 0.0)
            for _ in range(reps):
                idx = rng.sample(range(args.samples), n)
                keys, corr, sc = [q["keys"][i] for i in idx], [q["correct"][i] for i in idx], [q["score"][i] for i in idx]
                got["majority"] += pick(keys, corr, None, rng)
                got["weighted"] += pick(keys, corr, sc, rng)
                got["best-of-n"] += corr[max(range(n), key=lambda i: (sc[i], -i))]
                got["coverage"] += any(corr)
            for k in acc:
                acc[k].append(got[k] / reps)
        rows += [row(k, n, v, level=level) for k, v in acc.items()]
    pass1 = [float(np.mean(q["correct"])) for q in per]
    pairs, macro = [], []
    for q in per:
        right = [s for s, c in zip(q["score"], q["correct"], strict=True) if c]
        wrong = [s for s, c in zip(q["score"], q["correct"], strict=True) if not c]
        if right and wrong:
            wins = [1.0 if r > w else 0.5 if r == w else 0.0 for r in right for w in wrong]
            pairs += wins
            macro.append(float(np.mean(wins)))
    return {"level": level, "pass@1": row("pass@1", 1, pass1, level=level), "rows": rows,
            "prm_pairwise": {"macro": round(float(np.mean(macro)), 4) if macro else None,
                             "pooled": round(float(np.mean(pairs)), 4) if pairs else None,
                             "problems_with_both": len(macro)},
            "mean_tokens": round(float(np.mean([t for q in per for t in q["tokens"]])), 1)}


def solve_rows(name: str, strategy, problems, gen, task, verifier, **extra: Any) -> dict[str, Any]:
    results = strategy.solve(problems, gen, task, verifier)
    correct = [float(r.answer is not None and task.equivalent(p, r.answer)) for p, r in zip(problems, results, strict=True)]
    tokens = statistics.mean(r.compute.generated_tokens for r in results) if results else 0.0
    return row(name, extra.pop("n", 0), correct, tokens=round(tokens, 1), **extra)


def beam_part(args, task, gen, prm) -> list[dict[str, Any]]:
    problems = task.generate(args.search_problems, args.hard, seed=TEST_SEED)
    rows = []
    for n in (4, 8, 16):
        for name, strat in (("beam", get_strategy("beam", n=n, width=4, temperature=1.0, seed=args.seed)),
                            ("best-of-n", get_strategy("best-of-n", n=n, temperature=1.0, seed=args.seed))):
            rows.append(solve_rows(name, strat, problems, gen, task, prm, n=n, level=args.hard))
            print(rows[-1], flush=True)
    return rows


def derivation_tokens(task, level: int) -> int:
    """Mean reference-solution length (characters = tokens) on validation-seed problems."""
    return round(statistics.mean(len(task.solve(p)) for p in task.generate(50, level, seed=VALID_SEED)))


def budget_part(args, task, gen) -> list[dict[str, Any]]:
    problems = task.generate(args.problems, args.level, seed=TEST_SEED)
    d = derivation_tokens(task, args.level)
    rows = []
    for k in (1, 2, 3):
        for name, waits in (("budget-forcing", None), ("truncation", 0)):
            strat = get_strategy("budget-forcing", budget=k * d, waits=waits, temperature=1.0, seed=args.seed)
            rows.append(solve_rows(name, strat, problems, gen, task, None, n=k * d, derivations=k, level=args.level))
            print(rows[-1], flush=True)
    return rows


def refine_part(args, task, gen, prm) -> list[dict[str, Any]]:
    problems = task.generate(args.problems, args.level, seed=TEST_SEED)
    rows = []
    for name, verifier in (("self-refine", None), ("self-refine+prm", prm)):
        strat = get_strategy("self-refine", turns=3, temperature=1.0, seed=args.seed)
        results = strat.solve(problems, gen, task, verifier)
        for turn in (1, 2, 3):
            correct = []
            for p, r in zip(problems, results, strict=True):
                upto = [c for c in r.candidates if c.meta["turn"] < turn]
                answer = upto[-1].answer if upto else None
                correct.append(float(answer is not None and task.equivalent(p, answer)))
            rows.append(row(name, turn, correct, level=args.level))
            print(rows[-1], flush=True)
    return rows


def incontext_part(args, task, gen) -> list[dict[str, Any]]:
    bank = SolutionBank([(p.prompt, task.solve(p)) for lv in (4, 5, 6, 7, 8)
                         for p in task.generate(40, lv, seed=VALID_SEED)])
    problems = task.generate(args.problems, args.level, seed=TEST_SEED)
    rows = []
    for k in (0, 2):
        prompts = ["".join(ps + s for ps, s, _ in bank.retrieve(p.prompt, k)) + p.prompt for p in problems]
        params = SamplingParams(n=8, temperature=1.0, max_tokens=args.max_tokens, seed=args.seed)
        outs = gen.generate(prompts, params).completions
        acc = [float(np.mean([task.is_correct(p, c.text) for c in cs])) for p, cs in zip(problems, outs, strict=True)]
        rows.append(row("pass@1", 1, acc, examples=k, level=args.level))
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="policy (HF directory)")
    parser.add_argument("--prm", default=str(prm_path()),
                        help="PRM directory; a comma-separated list scores the pool with each (the first one is used elsewhere)")
    parser.add_argument("--parts", default="pool,beam,budget,refine,incontext")
    parser.add_argument("--level", type=int, default=6, help="the mid level")
    parser.add_argument("--hard", type=int, default=10, help="the hardest reported trained level")
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--search-problems", type=int, default=50)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=Path("runs/benchmarks/testbed"))
    parser.add_argument("--out", type=Path, default=None, help="summary JSON (default results/testbed_shapes-<model>.json)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    prm_dirs = [Path(x) for x in args.prm.split(",")]
    weights = (args.model / "model.safetensors").read_bytes() + b"".join(
        (d / "model.safetensors").read_bytes() for d in prm_dirs)
    tag = hashlib.sha256(weights).hexdigest()[:12]
    cache = args.runs / f"{args.model.name}-{tag}-p{args.problems}-s{args.samples}"
    out = args.out or RESULTS / f"testbed_shapes-{args.model.name}.json"
    task, gen = get_task("arith"), LocalGenerator(args.model, max_batch=512)
    prms = {str(d): LearnedPRM(path=d) for d in prm_dirs}
    prm = next(iter(prms.values()))
    jobs = {
        "pool": lambda: [row for lv in (args.level, args.hard) for row in pool_part(args, task, gen, prms, lv)],
        "beam": lambda: beam_part(args, task, gen, prm),
        "budget": lambda: budget_part(args, task, gen),
        "refine": lambda: refine_part(args, task, gen, prm),
        "incontext": lambda: incontext_part(args, task, gen),
    }
    summary = json.loads(out.read_text()) if out.exists() else {}
    summary.update(model=str(args.model), prm=args.prm, weights=tag, test_seed=TEST_SEED)
    summary.setdefault("parts", {})
    for part in args.parts.split(","):
        if part not in jobs:
            raise SystemExit(f"unknown part {part!r}; valid: {', '.join(jobs)}")
        path = cache / f"{part}.json"
        if not path.exists():
            start = time.time()
            atomic_write_json(path, {"rows": jobs[part](), "wall_s": round(time.time() - start, 1)})
        summary["parts"][part] = json.loads(path.read_text())
        atomic_write_json(out, summary)
        print(f"{part}: done ({summary['parts'][part]['wall_s']} s)", flush=True)


if __name__ == "__main__":
    main()
