"""Per-problem test-time learning: LatentSeek, TT-SI and Dynamic Cheatsheet, accuracy
before -> after and cost (tokens, wall time) on held-out problems.
Results: benchmarks/results/learn_instance.json.

    .venv/bin/python benchmarks/learn_instance.py --methods latentseek-self,tt-si-inferred,dynamic-cheatsheet-prm
"""

from __future__ import annotations

from typing import Any

from learn_common import parser, run_method, write

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


def main() -> None:
    p = parser(__doc__, split="6-10", problems=48)
    p.add_argument("--methods", default=LABEL_FREE,
                   help=f"of {', '.join(VARIANTS)}")
    args = p.parse_args()
    runs = {}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        if name not in VARIANTS:
            raise SystemExit(f"unknown method {name!r}; valid: {', '.join(VARIANTS)}")
        method, options = VARIANTS[name]
        runs[name] = run_method(args, method, f"instance-{name}", options)
        write(args, "learn_instance.json", {"runs": runs})


if __name__ == "__main__":
    main()
