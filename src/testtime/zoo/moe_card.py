"""The model card of TinyReasoner-MoE (``testtime zoo train reasoner-moe``), from its training.json."""

from __future__ import annotations

from typing import Any

from testtime.zoo.reasoner_data import TEST_SEED, VALID_SEED
from testtime.zoo.training import threads_text


def card(info: dict[str, Any]) -> str:
    c = info["config"]
    sel = info["selected"]
    lines = [
        "# TinyReasoner-MoE",
        "",
        "A character-level Mixtral-format mixture-of-experts LM trained from scratch by",
        "`testtime zoo train reasoner-moe` on the generated task families of `testtime.tasks`",
        "(TinyReasoner's mixture and recipe): the embedded model of the expert-count",
        "(Dynamic Experts Search) and expert-rerouting methods. Loss on solution tokens only.",
        "",
        "## Model",
        f"- MixtralForCausalLM: {c['n_layer']} layers, hidden {c['n_embd']}, {c['n_head']} heads,"
        f" {c['n_experts']} experts of width {c['expert_size']} per layer, top-{c['top_k']} routing;"
        f" {info['parameters']:,} parameters (fp32).",
        "- Expert count per request: `testtime.backends.experts` (`--backend-option experts=K`).",
        "- Tokenizer: TinyReasoner's, one token per character; `<bos>` prepended; ends at `<eos>`.",
        "",
        "## Training",
        f"- seed {info['seed']}; {info['steps_trained']} steps of {c['batch_size']} sequences; AdamW lr {c['lr']}"
        f" (warm-up {c['warmup']}, cosine to {c['min_lr_ratio']}x), weight decay {c['weight_decay']};"
        f" load-balancing loss x {c['aux_coef']}; {info['wall_s'] / 60:.1f} min {threads_text(info)}.",
        "- Families: " + "; ".join(f"{k} {v['share']:.0%}" for k, v in info["mixture"]["families"].items())
        + "; kinds: " + ", ".join(f"{k} {w:.0%}" for k, w in info["mixture"]["kinds"].items()) + ".",
        f"- Problem seeds: training >= 1,000,000; validation seed {VALID_SEED}; held-out test seed {TEST_SEED}.",
        *(f"- Resumed at step {ch['at_step']} with `--steps {ch['to']}` (was {ch['from']}): the cosine restretched."
          for ch in info.get("schedule_changes", [])),
        "",
        "## Checkpoint selection (validation seed only)",
        f"pass@1 at T=1 on arith level {c['valid_level']}; the most capable checkpoint with pass@1 in"
        f" {c['window']}: step {sel['step']} (valid pass@1 {sel['valid_pass1']:.3f}).",
        "",
        "| step | train loss | valid pass@1 |",
        "|---|---|---|",
        *(f"| {h['step']} | {h['loss']:.4f} | {h['valid_pass1']:.3f} |" for h in info["history"]),
    ]
    return "\n".join(lines) + "\n"
