"""Train the process reward model of :mod:`testtime.verifiers.prm` on TinyReasoner's
own samples (Lightman et al. 2023; Snell et al. 2024): step label = every step so
far is valid (the task's step checker), answer-line label = the final answer is
correct. Samples are cached in ``<out>/samples.json`` (TinyPRM 2: per family and level
under ``<out>/samples/``), written atomically, and training checkpoints every
``CHECKPOINT_EVERY`` steps, so a killed run resumes (``resume=True``) where it stopped.
"""

from __future__ import annotations

import io
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from transformers import GPT2Config, GPT2ForTokenClassification

from testtime.backends.base import SamplingParams
from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from testtime.tasks import get_task
from testtime.tasks.base import extract_final_answer
from testtime.zoo import reasoner_path
from testtime.zoo.prm_data import pairs, pairwise_accuracy
from testtime.zoo.prm_format import scored_positions
from testtime.zoo.reasoner_data import MIXTURE, TRAIN_SEED_BASE
from testtime.zoo.tokenizer import save_tokenizer
from testtime.zoo.training import LOG_EVERY

# Problem seeds: PRM training data disjoint from the policy's training (>= TRAIN_SEED_BASE),
# validation (VALID_SEED) and held-out test (TEST_SEED) problems; PRM test problems use 100 + level.
PRM_SEED_BASE = TRAIN_SEED_BASE // 2
PRM_TEST_SEED_BASE = 100
CHECKPOINT = "checkpoints/prm.pt"
CHECKPOINT_EVERY = 100


def sample_labelled(
    policy_dir: Path, problems_per_level: int, samples: int, seed_base: int, seed: int
) -> list[dict[str, Any]]:
    """TinyReasoner's samples (T = 1) over every family and level, with step and outcome labels."""
    from testtime.backends.local import LocalGenerator

    gen = LocalGenerator(policy_dir, max_batch=512)
    rows = []
    for family, (_, levels) in MIXTURE.items():
        task = get_task(family)
        for level in levels:
            problems = task.generate(problems_per_level, level, seed=seed_base + level)
            params = SamplingParams(n=samples, temperature=1.0, max_tokens=400, seed=seed + level)
            result = gen.generate([p.prompt for p in problems], params)
            for p, outs in zip(problems, result.completions, strict=True):
                for c in outs:
                    valid = task.check_steps(p, c.text)
                    prefix = [bool(np.all(valid[: i + 1])) for i in range(len(valid))]
                    correct = task.is_correct(p, c.text)
                    rows.append({"prompt": p.prompt, "solution": c.text, "steps": prefix, "correct": correct,
                                 "task": family, "level": level})
    return rows


def check_policy(policy: Path) -> None:
    """The policy must be a local GPT-2 causal LM (the PRM starts from its transformer)."""
    config = policy / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"no Hugging Face model at {policy} (no config.json); pass a TinyReasoner directory")
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type != "gpt2":
        raise ValueError(f"the PRM starts from a GPT-2 policy (TinyReasoner, -L, or a primed one); {policy} is {model_type!r}")


def labels_for(row: dict[str, Any]) -> tuple[str, list[int], list[float]]:
    """(text, scored token positions, targets) of one labelled sample."""
    text, positions = scored_positions(len(row["prompt"]) + 1, row["solution"])
    targets = [float(x) for x in row["steps"]]
    if extract_final_answer(text) is not None:
        targets.append(float(row["correct"]))
    n = min(len(positions), len(targets))  # a sample cut at max_tokens may end mid-line
    return row["prompt"] + text, positions[:n], targets[:n]


def auroc(scores: list[float], labels: list[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    pos = sum(labels)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((sum(r for r, y in zip(ranks, labels, strict=True) if y) - pos * (pos + 1) / 2) / (pos * neg))


def train_prm(
    out: str | Path,
    steps: int | None = None,
    seed: int = 0,
    resume: bool = False,
    threads: int = 1,
    policy_dir: str | Path | None = None,
    problems_per_level: int = 100,
    samples: int = 8,
    batch_size: int = 32,
    lr: float = 1e-3,
    near_misses: int = 0,
    mc_share: float = 0.0,
    rank_weight: float = 0.0,
) -> dict[str, Any]:
    """Sample + label (cached), train, and report AUROC on held-out problems.

    TinyPRM 2 (issue 12) sets ``near_misses`` (injected one-step negatives per problem),
    ``mc_share`` (share of samples also labelled by Monte-Carlo rollouts) and
    ``rank_weight`` (weight of the within-problem pairwise loss on the final score);
    its rows come from :func:`testtime.zoo.prm_data.build_rows` (on-track labels).

    The PRM starts from the policy's own transformer (a fresh one-logit head on top),
    as reward models usually do: checking ``43*2=86`` needs the arithmetic the policy
    has already learned, which the few thousand labelled samples could not teach."""
    torch.set_num_threads(threads)
    out = Path(out)
    steps = steps or 1000
    policy = Path(policy_dir) if policy_dir is not None else reasoner_path()
    check_policy(policy)
    cache, shards = out / "samples.json", out / "samples"
    if (cache.exists() or shards.exists()) and not resume:
        raise FileExistsError(f"{out} holds samples: pass --resume to reuse them, or another --out")
    run = {"policy": str(policy.resolve()), "seed": seed, "steps": steps, "problems_per_level": problems_per_level,
           "samples": samples, "batch_size": batch_size, "lr": lr, "near_misses": near_misses, "mc_share": mc_share,
           "rank_weight": rank_weight}
    ckpt_path = out / CHECKPOINT
    ckpt = torch.load(ckpt_path, weights_only=False) if resume and ckpt_path.exists() else None
    if ckpt is not None and ckpt["run"] != run:
        raise ValueError(f"{ckpt_path} was written by another run ({ckpt['run']}); drop --resume or match it")
    started = time.time() - (ckpt["wall_s"] if ckpt else 0.0)
    v2 = near_misses > 0 or mc_share > 0 or rank_weight > 0
    if cache.exists():
        data = json.loads(cache.read_text())
    elif v2:
        from testtime.backends.local import LocalGenerator
        from testtime.zoo.prm_data import build_rows

        sampling = {k: run[k] for k in ("policy", "seed", "problems_per_level", "samples", "near_misses", "mc_share")}
        marker = shards / "run.json"
        if marker.exists() and json.loads(marker.read_text()) != sampling:
            raise ValueError(f"{shards} holds samples of another run ({marker.read_text()}); use another --out")
        atomic_write_json(marker, sampling)
        gen = LocalGenerator(policy, max_batch=512)
        data = {
            "train": build_rows(gen, MIXTURE, problems_per_level, samples, PRM_SEED_BASE, seed,
                                near_misses=near_misses, mc_share=mc_share, cache=shards / "train"),
            # held out: the policy's own samples only (the distribution the PRM ranks at test time)
            "test": build_rows(gen, MIXTURE, max(1, problems_per_level // 4), samples, PRM_TEST_SEED_BASE,
                               seed + 1, near_misses=0, cache=shards / "test"),
        }
    else:
        data = {
            "train": sample_labelled(policy, problems_per_level, samples, PRM_SEED_BASE, seed),
            "test": sample_labelled(policy, max(1, problems_per_level // 4), samples, PRM_TEST_SEED_BASE, seed + 1),
        }
        atomic_write_json(cache, data)

    torch.manual_seed(seed)
    tokenizer = save_tokenizer(out)
    config = GPT2Config.from_pretrained(str(policy))
    config.update({"num_labels": 1, "pad_token_id": tokenizer.pad_token_id, "classifier_dropout": 0.0,
                   "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0})
    model = GPT2ForTokenClassification.from_pretrained(str(policy), config=config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    rows = [r for r in data["train"] if len(r["prompt"]) + len(r["solution"]) < 510]
    train = [t for t in map(labels_for, rows) if t[1]]
    rng = random.Random(seed)
    ranked = pairs(rows, rng) if rank_weight > 0 else []
    first = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        rng.setstate(ckpt["rng"])
        first = ckpt["step"]
    model.train()
    for step in range(first, steps):
        loss = _bce(model, tokenizer, rng.sample(train, min(batch_size, len(train))))
        if ranked:
            chosen = rng.sample(ranked, min(batch_size // 2, len(ranked)))
            loss = loss + rank_weight * _pairwise(model, tokenizer, [(labels_for(rows[a]), labels_for(rows[b]))
                                                                    for a, b in chosen])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % LOG_EVERY == 0:
            print(f"step {step + 1}: loss {loss.item():.4f} ({time.time() - started:.0f}s)", flush=True)
        if (step + 1) % CHECKPOINT_EVERY == 0 and step + 1 < steps:
            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "rng": rng.getstate(), "step": step + 1, "run": run,
                        "wall_s": time.time() - started}, buffer)
            atomic_write_bytes(ckpt_path, buffer.getvalue())
    model.eval()
    metrics = evaluate(model, tokenizer, data["test"])
    info = {"model": "prm", "policy": str(policy), "seed": seed, "steps": steps, "train_samples": len(train),
            "near_misses": near_misses, "mc_share": mc_share, "rank_weight": rank_weight,
            "test_samples": len(data["test"]), "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": round(loss.item(), 4), "wall_s": round(time.time() - started, 1), **metrics}
    model.save_pretrained(str(out), safe_serialization=True)
    atomic_write_json(out / "training.json", info)
    atomic_write_text(out / "README.md", _card(info))
    return info


def _logits(model, tokenizer, texts: list[str]) -> torch.Tensor:
    ids = [tokenizer(text).input_ids for text in texts]
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    inputs = torch.tensor([i + [pad] * (width - len(i)) for i in ids])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
    return model(input_ids=inputs, attention_mask=mask).logits[..., 0]


def _pairwise(model, tokenizer, batch: list[tuple[tuple[str, list[int], list[float]], ...]]) -> torch.Tensor:
    """Within-problem ranking: -log sigmoid(final logit of the right - of the wrong solution)."""
    flat = [x for pair in batch for x in pair]
    logits = _logits(model, tokenizer, [text for text, _, _ in flat])
    final = torch.stack([logits[i, pos[-1]] for i, (_, pos, _) in enumerate(flat)])
    return -torch.nn.functional.logsigmoid(final[0::2] - final[1::2]).mean()


def _bce(model, tokenizer, batch: list[tuple[str, list[int], list[float]]]) -> torch.Tensor:
    logits = _logits(model, tokenizer, [text for text, _, _ in batch])
    rows = torch.tensor([r for r, (_, pos, _) in enumerate(batch) for _ in pos])
    cols = torch.tensor([p for _, pos, _ in batch for p in pos])
    targets = torch.tensor([t for _, _, ts in batch for t in ts])
    return torch.nn.functional.binary_cross_entropy_with_logits(logits[rows, cols], targets)


@torch.inference_mode()
def evaluate(model, tokenizer, rows: list[dict[str, Any]], batch_size: int = 64) -> dict[str, float]:
    """AUROC of the final score (the answer line's, else the last step's) for final-answer
    correctness, and of every step score for its step label, on held-out samples; the
    within-problem pairwise accuracy where rows carry their problem."""
    labelled = sorted(((row, labels_for(row)) for row in rows), key=lambda x: len(x[1][0]))  # like lengths batch
    labelled = [(row, label) for row, label in labelled if label[1]]
    final_scores, step_scores, step_labels = [], [], []
    for start in range(0, len(labelled), batch_size):
        batch = labelled[start : start + batch_size]
        logits = _logits(model, tokenizer, [text for _, (text, _, _) in batch])  # right padding: exact
        for i, (row, (_, positions, _)) in enumerate(batch):
            probs = torch.sigmoid(logits[i, positions]).tolist()
            final_scores.append(probs[-1])
            step_scores += probs[: len(row["steps"])]
            step_labels += [bool(x) for x in row["steps"][: len(probs)]]
    kept = [row for row, _ in labelled]
    finals = [bool(row["correct"]) for row in kept]
    return {"auroc_final": round(auroc(final_scores, finals), 4),
            "auroc_steps": round(auroc(step_scores, [x >= 0.5 for x in step_labels]), 4),
            "pairwise_within_problem": round(pairwise_accuracy(kept, final_scores), 4) if "problem" in rows[0] else None,
            "test_accuracy": round(sum(finals) / max(1, len(finals)), 4)}


def _card(info: dict[str, Any]) -> str:
    return "\n".join([
        "# TinyPRM",
        "",
        "Process reward model for TinyReasoner (`testtime.verifiers.prm`): GPT2ForTokenClassification,"
        f" {info['parameters']:,} parameters initialised from TinyReasoner's transformer, one logit at the newline ending each step"
        " (P[all steps so far valid]) and at the answer line (P[final answer correct]).",
        f"Trained {info['steps']} steps on {info['train_samples']} of TinyReasoner's own samples"
        " (T = 1, all families and levels) labelled by the task step checkers;"
        f" seed {info['seed']}, wall time {info['wall_s'] / 60:.1f} min.",
        "",
        *([f"Training data (TinyPRM 2 recipe): {info['near_misses']} near-miss negatives (one injected wrong step)"
           " and the reference solution per problem beside the policy samples; on-track step labels, averaged"
           f" with Monte-Carlo rollout values (Math-Shepherd) on {info['mc_share']:.0%} of the samples; a"
           f" within-problem pairwise ranking loss on the final score (weight {info['rank_weight']})."]
          if info.get("near_misses") or info.get("mc_share") or info.get("rank_weight") else []),
        "",
        f"Held-out ({info['test_samples']} samples, test-seed problems):"
        f" AUROC of the final score for answer correctness {info['auroc_final']:.3f};"
        f" step-level AUROC {info['auroc_steps']:.3f}; policy accuracy on them {info['test_accuracy']:.3f}"
        + (f"; within-problem pairwise accuracy (a right vs a wrong solution of the same problem)"
           f" {info['pairwise_within_problem']:.3f}." if info.get("pairwise_within_problem") is not None else "."),
        "",
    ])
