"""Per-problem test-time learning: LatentSeek, TT-SI and Dynamic Cheatsheet, accuracy
before -> after and cost (tokens, wall time) on held-out problems.
Results: benchmarks/results/learn_instance.json.

    .venv/bin/python benchmarks/learn_instance.py --methods latentseek,tt-si,dynamic-cheatsheet
"""

from __future__ import annotations

from typing import Any

from learn_common import parser, run_method, write

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "latentseek": ("latentseek", {}),  # label-free step-checker reward
    "latentseek-self": ("latentseek", {"reward": "self"}),
    "latentseek-k4": ("latentseek", {"k_init": 4}),
    "tt-si": ("tt-si", {}),
    "dynamic-cheatsheet": ("dynamic-cheatsheet", {"examples": 2}),
}


def main() -> None:
    p = parser(__doc__, split="6-10", problems=48)
    p.add_argument("--methods", default="latentseek,tt-si,dynamic-cheatsheet",
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
