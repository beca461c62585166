"""A scale run directory in the harness's real file formats (results.json rows,
problems.jsonl records with every candidate, the report's real plots)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testtime.scale.report import write_report

HOSTILE = "<script>document.title='pwned'</script>"


def _row(strategy: str, n: int, acc: float) -> dict:
    return {
        "strategy": strategy, "n": n, "difficulty": 4, "labels": "none", "accuracy": acc,
        "ci_low": max(0.0, acc - 0.2), "ci_high": min(1.0, acc + 0.2), "coverage": None,
        "generated_tokens": 40.0 * n, "prompt_tokens": 20.0, "verifier_tokens": 0.0,
        "charged_tokens": 20.0 + 40 * n, "computed_tokens": 20.0 + 40 * n, "flops": 1e6 * n,
        "model_calls": 1.0, "wall_s": 0.1 * n, "baseline": None, "diff": None,
        "diff_low": None, "diff_high": None,
    }


def _candidate(text: str, answer: str | None, correct: bool, score: float) -> dict:
    return {"text": text, "answer": answer, "num_tokens": len(text), "finish_reason": "stop",
            "mean_logprob": None, "step_scores": [score], "score": score, "meta": {},
            "correct": correct}


@pytest.fixture()
def scale_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    rows = [_row("majority", 1, 0.5), _row("majority", 4, 0.75), _row("greedy", 1, 0.5)]
    config = {"task": "arith", "backend": "embedded", "verifier": "oracle", "budgets": [1, 4]}
    (out / "results.json").write_text(json.dumps({"config": config, "rows": rows}))
    write_report(out, rows, config)
    pool = [
        _candidate("3+4=7\nanswer: 7\n", "7", True, 0.9),
        _candidate("3+4=8\nanswer: 8\n", "8", False, 0.2),
        _candidate("3+4=7\nanswer: 7\n", "7", True, 0.8),
        _candidate(HOSTILE + "\nanswer: 9\n", "9", False, 0.1),
    ]
    records = []
    for k, answer, acc in ((1, "7", 0.5), (4, "7", 1.0)):
        records.append({"strategy": "majority", "n": k, "difficulty": 4, "problem_id": "arith-4-0-0",
                        "reference": "7", "answer": answer, "accuracy": acc, "coverage": 1.0,
                        "subsets": 4, "compute": {"generated_tokens": 10.0 * k, "model_calls": 1},
                        "labels": "none", "candidates": pool})  # fmt: skip
    records.append({"strategy": "greedy", "n": 1, "difficulty": 4, "problem_id": "arith-4-0-0",
                    "reference": "7", "answer": "8", "accuracy": 0.0,
                    "compute": {"generated_tokens": 9.0},
                    "candidates": [_candidate("3+4=8\nanswer: 8\n", "8", False, 0.2)]})  # fmt: skip
    lines = [json.dumps(r) for r in records]
    lines.insert(1, "{not json")  # a damaged line is skipped, not fatal
    (out / "problems.jsonl").write_text("\n".join(lines) + "\n")
    return out
