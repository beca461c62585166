"""TinyReasoner through llama.cpp's server (GGUF export) vs the embedded backend:
accuracy of the same strategies side by side, and single-request decode speed.

    python benchmarks/engines.py [--limit 20] [--level 2] [--threads 1]

Exports the shipped TinyReasoner to GGUF (``testtime zoo export``), starts
``llama-cpp-python``'s server on loopback (``--interrupt_requests false``), and runs
greedy, majority (N = 1, 4), PRM best-of-N and beam (N = 4) and budget forcing
(64 thinking tokens) through the unmodified HTTP backend, which adapts to the server
by itself (split n, client-side stops; see ``backend_info``), and on the embedded
backend. Needs ``pip install 'llama-cpp-python[server]' gguf``. Writes
benchmarks/results/engines.json. The machine is shared: tokens/s are noisy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from testtime.backends import embedded_model_dir, get_generator
from testtime.backends.base import SamplingParams
from testtime.backends.llama_server import LlamaServer
from testtime.scale.harness import scale
from testtime.store.atomic import atomic_write_json
from testtime.tasks import get_task
from testtime.verifiers import get_verifier
from testtime.zoo.gguf_export import export_gguf

RESULTS = Path(__file__).parent / "results" / "engines.json"
RUNS = [(["greedy", "majority"], [1, 4]), (["best-of-n", "beam"], [4]), (["budget-forcing"], [64])]


def accuracy(gen, task, verifier, args, out: Path) -> tuple[dict, dict]:
    rows, info = {}, {}
    for names, budgets in RUNS:
        res = scale(task, gen, names, budgets, out / "-".join(names), verifier=verifier,
                    difficulties=[args.level], limit=args.limit, seed=0, show_progress=False,
                    options={"temperature": 0.8, "max_tokens": 128, "seed": 0}, bootstrap=200)
        for r in res.rows:
            rows[f"{r['strategy']}@{r['n']}"] = {
                "accuracy": round(r["accuracy"], 3), "ci": [round(r["ci_low"], 3), round(r["ci_high"], 3)],
                "generated_tokens": round(r["generated_tokens"], 1),
                "wall_s": round(r.get("wall_s") or 0.0, 3),
            }
        info = gen.describe()
    return rows, info


def decode_speed(gen, repeats: int = 3) -> float:
    """Generated tokens/s of one greedy 128-token request (best of ``repeats``)."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = gen.generate(["arith: 7 +3 *2\n"], SamplingParams(temperature=0, max_tokens=128))
        best = max(best, res.usage.completion_tokens / (time.perf_counter() - t0))
    return round(best, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--level", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    task = get_task("arith")
    verifier = get_verifier("prm", task=task)
    model_dir = embedded_model_dir()
    result: dict = {"task": "arith", "level": args.level, "limit": args.limit,
                    "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        export_gguf(model_dir, tmp_path / "tiny-reasoner.gguf")
        with LlamaServer(tmp_path / "tiny-reasoner.gguf", threads=args.threads) as url:
            remote = get_generator(f"openai:{url}", model="tiny", tokenizer=str(model_dir))
            t0 = time.perf_counter()
            rows, info = accuracy(remote, task, verifier, args, tmp_path / "llama")
            result["llama.cpp"] = {"rows": rows, "seconds": round(time.perf_counter() - t0, 1),
                                   "decode_tokens_per_s": decode_speed(remote),
                                   "backend_info": info}
            remote.close()
        local = get_generator("embedded")
        t0 = time.perf_counter()
        rows, _ = accuracy(local, task, verifier, args, tmp_path / "embedded")
        result["embedded"] = {"rows": rows, "seconds": round(time.perf_counter() - t0, 1),
                              "decode_tokens_per_s": decode_speed(local)}
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    atomic_write_json(args.out, result)
    print(f"{'strategy':>18} {'llama.cpp':>10} {'embedded':>10}")
    for key, r in result["llama.cpp"]["rows"].items():
        e = result["embedded"]["rows"].get(key, {})
        print(f"{key:>18} {r['accuracy']:>10.3f} {e.get('accuracy', float('nan')):>10.3f}")
    print(f"{'decode tok/s':>18} {result['llama.cpp']['decode_tokens_per_s']:>10} "
          f"{result['embedded']['decode_tokens_per_s']:>10}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
