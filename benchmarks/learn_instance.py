"""Per-problem test-time learning: LatentSeek, TT-SI and Dynamic Cheatsheet, accuracy
before -> after and cost (tokens, wall time) on held-out problems, with
paired-bootstrap 95% CIs over problems (``paired``: after - before; an oracle
variant also minus its label-free counterpart, ``vs_label_free``).
Results: benchmarks/results/learn_instance.json.

    .venv/bin/python benchmarks/learn_instance.py --methods latentseek-self,tt-si-inferred,dynamic-cheatsheet-prm
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learn_common import parser, run_method, write

from testtime.scale.summary import bootstrap_ci
from testtime.store import RunStore

# Label-free by default; the *-oracle / *-gold variants are labelled upper bounds
# (their metrics say which gold signal they read: "labels").
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "latentseek-self": ("latentseek", {}),  # the model's own confidence
    "latentseek-prm": ("latentseek", {"reward": "verifier", "verifier": "prm"}),
    "latentseek-self-k4": ("latentseek", {"k_init": 4}),
    "latentseek-oracle": ("latentseek", {"reward": "verifier", "verifier": "oracle"}),
    "tt-si-inferred": ("tt-si", {}),  # similar problems at the level inferred from the prompt
    "tt-si-gold": ("tt-si", {"level": "gold"}),
    "dynamic-cheatsheet-prm": ("dynamic-cheatsheet", {"examples": 2}),
    "dynamic-cheatsheet-consistency": (
        "dynamic-cheatsheet", {"examples": 2, "admit": "consistency", "samples": 4, "temperature": 0.8}),
    "dynamic-cheatsheet-oracle": ("dynamic-cheatsheet", {"examples": 2, "admit": "oracle"}),
}
LABEL_FREE = "latentseek-self,latentseek-prm,tt-si-inferred,dynamic-cheatsheet-prm"
COUNTERPART = {"latentseek-oracle": "latentseek-self", "tt-si-gold": "tt-si-inferred",
               "dynamic-cheatsheet-oracle": "dynamic-cheatsheet-prm"}
BEFORE = ("greedy_correct", "before_correct", "base_correct")  # per method's stored result


def outcomes(run_dir: Path) -> dict[str, tuple[float | None, float]]:
    """Per problem id: (correct before, or None, correct after), from the run's store."""
    with RunStore(run_dir) as store:
        items = [(k, v) for k, v in store.items() if isinstance(v, dict) and "correct" in v]
    before = next((f for f in BEFORE if all(f in v for _, v in items)), None)
    return {k: (None if before is None else float(v[before]), float(v["correct"])) for k, v in items}


def paired(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Mean of after - before over the problems both hold, with a paired bootstrap 95% CI."""
    diffs = [a - before[k] for k, a in after.items() if k in before]
    low, high = bootstrap_ci(diffs)
    return {"diff": sum(diffs) / len(diffs), "low": low, "high": high, "problems": len(diffs)}


def main() -> None:
    p = parser(__doc__, split="6-10", problems=48)
    p.add_argument("--methods", default=LABEL_FREE,
                   help=f"of {', '.join(VARIANTS)}")
    args = p.parse_args()
    runs: dict[str, Any] = {}
    per: dict[str, dict[str, tuple[float | None, float]]] = {}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        if name not in VARIANTS:
            raise SystemExit(f"unknown method {name!r}; valid: {', '.join(VARIANTS)}")
        method, options = VARIANTS[name]
        runs[name] = run_method(args, method, f"instance-{name}", options)
        per[name] = outcomes(args.runs / f"instance-{name}{args.tag}")
        after = {k: a for k, (_, a) in per[name].items()}
        if all(b is not None for b, _ in per[name].values()):
            runs[name]["paired"] = paired(after, {k: b for k, (b, _) in per[name].items()})
        if COUNTERPART.get(name) in per:
            runs[name]["vs_label_free"] = {
                "of": COUNTERPART[name],
                **paired(after, {k: a for k, (_, a) in per[COUNTERPART[name]].items()})}
        write(args, "learn_instance.json", {"runs": runs})


if __name__ == "__main__":
    main()
