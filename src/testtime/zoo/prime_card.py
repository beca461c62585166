"""The model card of a primed model (``testtime zoo prime``), from its training.json."""

from __future__ import annotations

from typing import Any

from testtime.zoo.training import threads_text


def card(info: dict[str, Any]) -> str:
    c = info["config"]
    sel = info["selected"]
    keys = list(info["history"][0].get("valid", {})) if info["history"] else []
    rows = [f"| {h['step']} | {h['loss']:.4f} | " + "".join(f"{h['valid'][k]:.3f} | " for k in keys)
            + f"{h['valid_pass1']:.3f} |" for h in info["history"]]
    return "\n".join([
        f"# {info.get('name', 'Primed model')}",
        "",
        (f"Trained from an untrained `{info['model']}` start" if info["model"].startswith("scratch")
         else f"Fine-tuned from `{info['model']}`") + " by `testtime zoo prime` on cognitive-behaviour traces"
        " (`testtime.zoo.behaviours`; Gandhi et al. 2025)" + (" with LoRA (merged)." if c["lora"] else "."),
        "",
        "- Behaviour mix: " + ", ".join(f"{k} {w:.0%}" for k, w in info["mix"].items()),
        "- Families: " + "; ".join(f"{k} {v[0]:.0%} (levels {v[1][0]}-{v[1][-1]})" for k, v in info["families"].items()),
        f"- {info['steps_trained']} steps of {c['batch_size']} traces, AdamW lr {c['lr']} (warm-up {c['warmup']},"
        f" cosine to {c['min_lr_ratio']}x); seed {info['seed']}; {info['parameters']:,} parameters;"
        f" wall time {info['wall_s'] / 60:.1f} min {threads_text(info)}.",
        f"- Selected step {sel['step']} (mean validation pass@1 {sel['valid_pass1']:.3f}; arith, validation seed,"
        f" {c['valid_problems']} problems x {c['valid_samples']} samples per behaviour@level, T 1; the first"
        f" one's pass@1 kept in {c['window']}).",
        *(f"- Resumed at step {ch['at_step']} with `--steps {ch['to']}` (was {ch['from']}):"
          " the cosine schedule restretched to the new end." for ch in info.get("schedule_changes", [])),
        "",
        "| step | train loss | " + "".join(f"{k} | " for k in keys) + "mean |",
        "|---|---|" + "---|" * (len(keys) + 1),
        *rows,
        "",
    ])
