"""TinyReasoner's model card (README.md) from its training.json and, once benchmarked,
quality.json; a primed model's card comes from :mod:`testtime.zoo.prime_card`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testtime.store.atomic import atomic_write_text
from testtime.zoo.moe_card import card as moe_card
from testtime.zoo.prime_card import card as primed_card
from testtime.zoo.reasoner_data import TEST_SEED, VALID_SEED
from testtime.zoo.training import threads_text

TRAINING_INFO = "training.json"
QUALITY_INFO = "quality.json"


def write_model_card(out: Path) -> None:
    """README.md from training.json and, once benchmarked, quality.json."""
    info = json.loads((out / TRAINING_INFO).read_text())
    quality_path = out / QUALITY_INFO
    quality = json.loads(quality_path.read_text()) if quality_path.exists() else None
    own = moe_card if info.get("model") == "tiny-reasoner-moe" else primed_card if "mix" in info else None
    if own is not None:  # a primed model (testtime zoo prime) and the MoE have their own cards
        atomic_write_text(out / "README.md", own(info) + "\n" + "\n".join(quality_lines(quality)) + "\n")
        return
    c = info["config"]
    mix = info["mixture"]
    lines = [
        "# TinyReasoner",
        "",
        "A character-level GPT-2 trained from scratch by `testtime zoo train reasoner` on the",
        "generated task families of `testtime.tasks` (arith, countdown, mul): the embedded",
        "policy the test-time scaling methods run on. Loss on solution tokens only.",
        "",
        "## Model",
        f"- GPT2LMHeadModel: {c['n_layer']} layers, n_embd {c['n_embd']}, {c['n_head']} heads,"
        f" n_positions {c['n_positions']}; {info['parameters']:,} parameters (fp32).",
        "- Tokenizer: one token per character; encoding prepends `<bos>`; generation ends at `<eos>`.",
        "",
        "## Training",
        f"- seed {info['seed']}; {info['steps_trained']} steps of {c['batch_size']} sequences;"
        f" AdamW lr {c['lr']} (warm-up {c['warmup']}, cosine to {c['min_lr_ratio']}x),"
        f" weight decay {c['weight_decay']}; wall time {info['wall_s'] / 60:.1f} min"
        f" {threads_text(info)}"
        + ("." if info["complete"] else f" (exported mid-run: schedule planned for {c['steps']} steps)."),
        "- Families: "
        + "; ".join(
            f"{k} {v['share']:.0%} (difficulties {v['difficulties'][0]}-{v['difficulties'][-1]})"
            for k, v in mix["families"].items()
        ),
        "- Example kinds: "
        + ", ".join(f"{k} {w:.0%}" for k, w in mix["kinds"].items())
        + " (`wait`: attempt + `wait\\n` -> correct solution; `revise`: attempt + answer +"
        " `revise step j\\n` or `revise\\n` -> correct solution; see `testtime.zoo.reasoner_data`).",
        f"- Problem seeds: training >= 1,000,000; validation seed {VALID_SEED}; held-out test seed {TEST_SEED}.",
        *(
            f"- Resumed at step {ch['at_step']} with `--steps {ch['to']}` (was {ch['from']}):"
            " the cosine schedule restretched to the new end."
            for ch in info.get("schedule_changes", [])
        ),
        *([f"- Note: {info['note']}."] if info.get("note") else []),
        "",
        "## Checkpoint selection (validation seed only)",
        f"Validation pass@1 at T=1 on arith level {c['valid_level']} ({c['valid_problems']} problems x"
        f" {c['valid_samples']} samples); chosen: the most capable checkpoint with pass@1 in"
        f" {c['window']}. Selected step {info['selected']['step']}"
        f" (valid pass@1 {info['selected']['valid_pass1']:.3f}).",
        "",
        "| step | train loss | valid pass@1 |",
        "|---|---|---|",
        *(f"| {h['step']} | {h['loss']:.4f} | {h['valid_pass1']:.3f} |" for h in info["history"]),
        "",
    ]
    atomic_write_text(out / "README.md", "\n".join(lines + quality_lines(quality)) + "\n")


def quality_lines(quality: dict[str, Any] | None) -> list[str]:
    """The card's quality section from quality.json (benchmarks/reasoner_quality.py)."""
    lines = ["## Quality (held-out test seed, temperature 1.0)"]
    if quality is None:
        lines.append("Not measured yet: run `python benchmarks/reasoner_quality.py`.")
    else:
        ks = sorted({k for r in quality["results"] for k in r if k.startswith("pass@")},
                    key=lambda k: int(k[5:]))
        lines += [
            "Unbiased pass@k estimator; see benchmarks/reasoner_quality.py and quality.json.",
            "",
            "| task | level | problems | " + " | ".join(ks) + " | greedy |",
            "|---|---|---|" + "---|" * len(ks) + "---|",
        ]
        for r in quality["results"]:
            cells = " | ".join(f"{r[k]:.3f}" if k in r else "-" for k in ks)
            lines.append(f"| {r['task']} | {r['level']} | {r['problems']} | {cells} | {r['greedy']:.3f} |")
        target = next((r for r in quality["results"] if (r["task"], r["level"]) == ("arith", 6)), None)
        if target is not None:
            top = max((k for k in ks if k in target), key=lambda k: int(k[5:]))
            met = 0.25 <= target["pass@1"] <= 0.75 and (top == "pass@64" and target[top] >= 0.9)
            lines += [
                "",
                f"Target: arith level 6 pass@1 in [0.25, 0.75] and pass@64 >= 0.9 -"
                f" {'met' if met else 'NOT met'} (pass@1 {target['pass@1']:.3f},"
                f" {top} {target[top]:.3f}).",
            ]
    return lines
