"""DCO (confidence-limiting loss for pass@N) vs plain cross-entropy fine-tuning on
the task's training split: pass@k curves (k = 1..eval_samples) on held-out
problems before and after. Results: benchmarks/results/learn_dco.json.

    .venv/bin/python benchmarks/learn_dco.py
"""

from __future__ import annotations

from learn_common import parser, run_method, write


def main() -> None:
    p = parser(__doc__, split="8-12", problems=32)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--n", type=int, default=16, help="the N of pass@N that DCO targets")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-samples", type=int, default=16)
    args = p.parse_args()
    runs = {}
    for objective in ("dco", "ce"):
        options = {"objective": objective, "steps": args.steps, "n": args.n, "lr": args.lr,
                   "batch_size": args.batch_size, "eval_samples": args.eval_samples}
        result = run_method(args, "dco", f"dco-{objective}", options)
        result.pop("log", None)
        for key in ("before", "after"):
            result[key].pop("correct", None)
        runs[objective] = result
        write(args, "learn_dco.json", {"runs": runs})


if __name__ == "__main__":
    main()
