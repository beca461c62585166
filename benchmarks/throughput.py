"""Sampling throughput of the local engines: generated tokens/s at several batch sizes,
lean sampler vs plain transformers ``generate()`` vs llama.cpp, next to a compute limit.

Limit: a decoder spends ~2 x parameters FLOPs per token (Kaplan et al. 2020), so
``limit tokens/s = matmul FLOP/s / (2 x parameters)``, with the FLOP/s of a large
fp32 matmul measured on the same threads. Samples are fixed-length (EOS ignored,
``--max-tokens`` each) so every engine generates the same number of tokens;
``--natural`` adds runs that stop at EOS.

    python benchmarks/throughput.py [--model DIR] [--batches 1,16,64,256] [--threads 1]

``--engines ...,llama.cpp`` (where llama-cpp-python is installed) exports the model to
GGUF and samples it in process with llama.cpp on the same threads, its own defaults
made neutral (top_k 0, min_p 0, repeat_penalty 1) and EOS banned, as the other
engines ignore it; llama-cpp-python has no batched sampling, so its batch b is b
completions one after another.

``--paired R``: on a shared machine the CPU available drifts from minute to minute,
so engines measured one after the other are not comparable. This runs R rounds per
batch, every engine once per round, back to back (the order alternating), and
reports each engine's median tokens/s (per wall second and per CPU second of this
process, which other jobs' share of the cores moves less) and the median (min, max)
of the per-round ratios lean / other. Writes benchmarks/results/throughput_paired.json.

Uses TinyReasoner when its weights exist, else a randomly initialised GPT-2 of
the same configuration (flagged ``random_init`` in the results). Writes
benchmarks/results/throughput.json (atomically) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from testtime.backends import embedded_model_dir
from testtime.backends.base import BackendError, SamplingParams
from testtime.backends.local import LocalGenerator
from testtime.store.atomic import atomic_write_json

RESULTS = Path(__file__).parent / "results" / "throughput.json"
# TinyReasoner's architecture (testtime.zoo.reasoner defaults), for the random stand-in.
TINY_REASONER_SHAPE = {"n_layer": 4, "n_embd": 192, "n_head": 6, "n_positions": 512}


def matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of an n x n fp32 matmul on the current torch threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def random_stand_in(directory: Path) -> Path:
    """A randomly initialised GPT-2 with TinyReasoner's shape and tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from testtime.zoo.tokenizer import save_tokenizer

    tok = save_tokenizer(directory)
    config = GPT2Config(vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                        **TINY_REASONER_SHAPE)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


def arith_prompts(count: int, seed: int = 0) -> list[str]:
    """Prompts in the arith task's format, of varying length (the batch needs padding)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        ops = " ".join(f"{rng.choice('+-*')}{rng.randint(2, 99)}" for _ in range(rng.randint(2, 10)))
        out.append(f"arith: {rng.randint(0, 999)} {ops}\n")
    return out


class LlamaCppEngine:
    """llama.cpp (llama-cpp-python, in process) on a GGUF export, with the
    ``generate(prompts, params) -> usage`` shape :func:`measure` reads."""

    def __init__(self, model_dir: Path, threads: int, directory: Path) -> None:
        from llama_cpp import Llama

        from testtime.zoo.gguf_export import export_gguf

        gguf = directory / "model.gguf"
        export_gguf(model_dir, gguf)
        self.llm = Llama(str(gguf), n_threads=threads, n_threads_batch=threads, n_ctx=512,
                         verbose=False)
        self.eos = self.llm.token_eos()
        self.num_parameters = LocalGenerator(model_dir).num_parameters

    def generate(self, prompts: list[str], params: SamplingParams):
        from testtime.backends.base import GenerationResult, Usage

        usage = Usage(calls=len(prompts))
        for p in prompts:
            out = self.llm.create_completion(
                p, max_tokens=params.max_tokens, temperature=params.temperature,
                top_p=params.top_p, top_k=0, min_p=0.0, repeat_penalty=1.0, seed=params.seed,
                logit_bias={self.eos: float("-inf")},
            )
            usage.prompt_tokens += out["usage"]["prompt_tokens"]
            usage.completion_tokens += out["usage"]["completion_tokens"]
        return GenerationResult([], usage)


def measure(gen: LocalGenerator, batch: int, max_tokens: int, repeats: int) -> dict:
    """Best of ``repeats`` (matmul FLOP/s, generation) pairs, each pair measured back to
    back: on a shared machine the FLOP/s available changes from minute to minute, so
    each run is compared with the limit measured right before it."""
    prompts = arith_prompts(batch)
    params = SamplingParams(temperature=1.0, max_tokens=max_tokens, seed=0)
    best, fractions = None, []
    for _ in range(repeats):
        flops = matmul_flops()
        t0 = time.perf_counter()
        res = gen.generate(prompts, params)
        dt = time.perf_counter() - t0
        limit = flops / (2 * gen.num_parameters)
        tps = res.usage.completion_tokens / dt
        fractions.append(tps / limit)
        if best is None or tps / limit > best["fraction_of_limit"]:
            best = {
                "batch": batch, "seconds": round(dt, 4),
                "generated_tokens": res.usage.completion_tokens,
                "prompt_tokens": res.usage.prompt_tokens, "tokens_per_s": round(tps, 1),
                "matmul_gflops": round(flops / 1e9, 2), "limit_tokens_per_s": round(limit, 1),
                "fraction_of_limit": round(tps / limit, 4),
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
    best["fraction_of_limit_median"] = round(statistics.median(fractions), 4)
    return best


def paired(engines: dict, batch: int, max_tokens: int, rounds: int) -> dict:
    """Tokens/s of every engine, ``rounds`` back-to-back rounds (see the module doc)."""
    prompts = arith_prompts(batch)
    params = SamplingParams(temperature=1.0, max_tokens=max_tokens, seed=0)
    names = list(engines)
    tps: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}  # per CPU second of this process
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            res = engines[name].generate(prompts, params)
            tps[name].append(res.usage.completion_tokens / (time.perf_counter() - t0))
            cpu[name].append(res.usage.completion_tokens / (time.process_time() - c0))
    row: dict = {"batch": batch, "rounds": rounds, "load_average_1min": round(os.getloadavg()[0], 2)}
    for label, values in (("tokens_per_s", tps), ("tokens_per_cpu_s", cpu)):
        row[f"{label}_median"] = {n: round(statistics.median(v), 1) for n, v in values.items()}
        for other in names[1:]:
            ratios = sorted(a / b for a, b in zip(values[names[0]], values[other], strict=True))
            row[f"{label}_{names[0]}_over_{other}"] = {
                "median": round(statistics.median(ratios), 2),
                "min": round(ratios[0], 2), "max": round(ratios[-1], 2)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="HF GPT-2 directory (default: TinyReasoner)")
    ap.add_argument("--batches", default="1,16,64,256")
    ap.add_argument("--engines", default="lean,hf")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    ap.add_argument("--natural", action="store_true", help="also measure with EOS honoured")
    ap.add_argument("--paired", type=int, metavar="R", help="R interleaved rounds per batch")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    engines = args.engines.split(",")

    tmp = None
    random_init = False
    if args.model:
        model_dir = Path(args.model)
    else:
        try:
            model_dir = embedded_model_dir()
        except BackendError:
            tmp = tempfile.TemporaryDirectory()
            model_dir, random_init = random_stand_in(Path(tmp.name)), True
            print("TinyReasoner weights not found: measuring a RANDOM GPT-2 of the same shape")

    if args.paired:
        run_paired(args, model_dir, batches, engines)
        return
    rows = []
    modes = [("fixed", True)] + ([("natural", False)] if args.natural else [])
    for engine in engines:
        for mode, ignore_eos in modes:
            if engine == "llama.cpp":
                if mode != "fixed":
                    continue
                scratch = tempfile.TemporaryDirectory()
                gen = LlamaCppEngine(model_dir, args.threads, Path(scratch.name))
            else:
                # No prefix cache: the benchmark measures sampling, not reuse across calls.
                gen = LocalGenerator(model_dir, engine=engine, ignore_eos=ignore_eos,
                                     prefix_cache_mb=0)
            gen.generate(arith_prompts(4), SamplingParams(max_tokens=8, seed=0))  # warm-up
            for b in batches:
                r = measure(gen, b, args.max_tokens, args.repeats)
                r.update(engine=engine, mode=mode)
                rows.append(r)
                print(f"{engine:>4} {mode:>7} batch {b:>4}: {r['tokens_per_s']:>9.1f} tok/s "
                      f"= {100 * r['fraction_of_limit']:5.1f}% of limit "
                      f"{r['limit_tokens_per_s']:,.0f} tok/s "
                      f"(load {r['load_average_1min']})", flush=True)

    result = {
        # Other jobs on a shared machine skew every number: each row records the
        # matmul FLOP/s and load average measured next to it.
        "machine": {"threads": args.threads, "cores": os.cpu_count(), "torch": torch.__version__,
                    "cpu": platform.processor() or platform.machine()},
        "model": {"dir": model_dir.name if not random_init else "random stand-in",
                  "random_init": random_init, "parameters": gen.num_parameters,
                  **({"shape": TINY_REASONER_SHAPE} if random_init else {})},
        "max_tokens": args.max_tokens,
        "target": "lean at batch 64 >= 25% of the limit",
        "results": rows,
    }
    lean64 = [r for r in rows if r["engine"] == "lean" and r["batch"] == 64 and r["mode"] == "fixed"]
    if lean64:
        result["target_met"] = lean64[0]["fraction_of_limit"] >= 0.25
    atomic_write_json(args.out, result)

    print(f"\n{gen.num_parameters:,} parameters{' (random init)' if random_init else ''}, "
          f"{args.threads} thread(s), {args.max_tokens} tokens per sample")
    print(f"{'engine':>6} {'mode':>7} {'batch':>5} {'tok/s':>9} {'GFLOP/s':>8} {'limit':>9} "
          f"{'%limit':>7}")
    for r in rows:
        print(f"{r['engine']:>6} {r['mode']:>7} {r['batch']:>5} {r['tokens_per_s']:>9.0f} "
              f"{r['matmul_gflops']:>8.1f} {r['limit_tokens_per_s']:>9.0f} "
              f"{100 * r['fraction_of_limit']:>6.1f}%")
    speedup = {r["batch"]: r["tokens_per_s"] for r in rows if r["engine"] == "lean"
               and r["mode"] == "fixed"}
    for r in rows:
        if r["engine"] in ("hf", "llama.cpp") and r["mode"] == "fixed" and r["batch"] in speedup:
            print(f"lean / {r['engine']} at batch {r['batch']}: "
                  f"{speedup[r['batch']] / r['tokens_per_s']:.2f}x")
    print(f"wrote {args.out}")
    if tmp is not None:
        tmp.cleanup()


def make_engine(name: str, model_dir: Path, threads: int, scratch: Path):
    if name == "llama.cpp":
        return LlamaCppEngine(model_dir, threads, scratch)
    # No prefix cache: the benchmark measures sampling, not reuse across calls.
    return LocalGenerator(model_dir, engine=name, ignore_eos=True, prefix_cache_mb=0)


def run_paired(args, model_dir: Path, batches: list[int], names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        engines = {n: make_engine(n, model_dir, args.threads, Path(scratch)) for n in names}
        for gen in engines.values():
            gen.generate(arith_prompts(4), SamplingParams(max_tokens=8, seed=0))  # warm-up
        rows = []
        for b in batches:
            rows.append(paired(engines, b, args.max_tokens, args.paired))
            print(rows[-1], flush=True)
    out = args.out if args.out != RESULTS else RESULTS.with_name("throughput_paired.json")
    atomic_write_json(out, {
        "machine": {"threads": args.threads, "cores": os.cpu_count(), "torch": torch.__version__},
        "model": model_dir.name, "max_tokens": args.max_tokens, "engines": names,
        "goal": f"{names[0]} >= each other engine's tokens/s at every batch", "rows": rows,
    })
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
