"""LPN's test-time search measured: train (or resume) the Latent Program Network on the
procedural grid benchmark with gradient search in the loop, then exact-match accuracy
of each search mode against search steps (and FLOPs), in distribution (training
compositions, fresh grids) and out of distribution (held-out compositions); the run's
report, table and figure are copied into benchmarks/results/.

The same pipeline as ``testtime learn lpn`` (one code path); options after the known
ones go to it (``--hidden 256 --batch 32``). A training job: run it only in the
training slot. The defaults are sized for <= 60 min on 2 threads (issue 18): a 20-step
smoke of them took 0.107 s/step on one thread of the shared, busy 2-core machine
(load 4.6), so 25,000 steps take <= 45 min there, plus ~30 s for the 26 search cells
of 200 tasks per split; benchmarks/results/lpn_search_sizing.md has the smokes.

    python benchmarks/lpn_search.py --threads 2 --out runs/lpn
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from testtime.cli.learn import extra_options
from testtime.cli.lpn import learn_lpn

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/lpn"))
    parser.add_argument("--name", default="lpn_search", help="results file stem")
    parser.add_argument("lpn", nargs=argparse.REMAINDER, help="after --: testtime learn lpn options")
    args = parser.parse_args()
    options = [a for a in args.lpn if a != "--"]
    learn_lpn(extra_options(options), args.out, seed=args.seed, threads=args.threads,
              quiet=False, dry_run=False)
    RESULTS.mkdir(exist_ok=True)
    shutil.copyfile(args.out / "eval.json", RESULTS / f"{args.name}.json")
    shutil.copyfile(args.out / "search_curve.png", RESULTS / f"{args.name}.png")
    report = (args.out / "report.md").read_text().replace("(search_curve.png)", f"({args.name}.png)")
    (RESULTS / f"{args.name}.md").write_text(report + f"\nModel card: {args.out / 'weights' / 'README.md'}\n")


if __name__ == "__main__":
    main()
