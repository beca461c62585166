"""Model cards (``README.md`` next to the weights) of the CIFAR-10 source models."""

from __future__ import annotations

from testtime.zoo.cifar_config import CifarConfig


def model_card(name: str, cfg: CifarConfig, card: dict) -> str:
    n_params = card.get("params", 0)
    hist = "\n".join(
        f"| {h['epoch']} | {h['train_loss']:.3f} | "
        + (f"{h['test_acc'] * 100:.2f} |" if "test_acc" in h else "– |")
        for h in card.get("history", [])
    )
    return f"""# {name}-cifar10

A compact ResNet-9-style CIFAR-10 classifier with {"BatchNorm" if cfg.norm == "bn" else f"GroupNorm ({cfg.groups} groups)"},
the source model for test-time adaptation experiments in `testtime`.

- Architecture: `{cfg.arch}`, widths {list(cfg.widths)}, {n_params:,} parameters; input float
  [0, 1] NCHW, normalisation (CIFAR-10 mean/std) inside the model; logits out.
- Data: CIFAR-10 train split (50,000 images, the project's JPEG copy), random crop
  (reflect pad 4) + horizontal flip.
- Training: {cfg.epochs} epochs, batch {cfg.batch_size}, SGD Nesterov (momentum {cfg.momentum}),
  one-cycle LR peak {cfg.lr} ({cfg.warmup_frac:.0%} warm-up), weight decay {cfg.weight_decay},
  label smoothing {cfg.label_smoothing}, seed {cfg.seed}, one CPU thread{", bfloat16 autocast" if cfg.bf16 else ""}.
- Wall time: {card.get("wall_s", 0) / 60:.1f} min of training (one thread on a shared, busy 2-core machine;
  about 3 CPU-minutes per epoch with bfloat16 on an AVX512-BF16 core).
- Clean CIFAR-10 test accuracy: **{card.get("test_acc", float("nan")) * 100:.2f}%** (10,000 images;
  the test split was only measured, never used for choices).
- Reproduce: `testtime zoo train {name} --steps {cfg.epochs} --seed {cfg.seed}`
- Load: `testtime.zoo.load_cifar_model("{name}")`
- Limitations: a short schedule, sized to the shared CPU it was trained on; a longer one
  (`--steps <epochs>`) gives a more accurate source model.

| epoch | train loss | test acc % |
|---|---|---|
{hist}
"""


def fast_model_card(name: str, cfg: CifarConfig, card: dict) -> str:
    """The model card (README.md) of a fast-recipe model: what it is, how it was
    trained, and its clean accuracy and calibration on the CIFAR-10 test split."""
    arch = (
        f"airbench94 convnet, {'BatchNorm' if cfg.norm == 'bn' else f'GroupNorm ({cfg.groups} groups)'}, "
        f"widths {list(cfg.widths)}"
        if cfg.arch == "airnet"
        else f"LayerNorm ViT, dim {cfg.widths[0]}, depth {cfg.depth}, {cfg.heads} heads, patch {cfg.patch}"
    )
    opt = (
        f"Nesterov SGD (momentum {cfg.momentum}), lr {cfg.lr} / wd {cfg.weight_decay} per 1,024 "
        f"examples (decoupled), norm-bias lr x{cfg.bias_scaler:g}, Lookahead, whitening init"
        if cfg.recipe == "airbench"
        else f"AdamW lr {cfg.lr}, weight decay {cfg.weight_decay}"
    )
    hist = "\n".join(
        f"| {h['epoch']} | {h['train_loss']:.3f} | "
        + (f"{h['test_acc'] * 100:.2f} |" if "test_acc" in h else "– |")
        for h in card.get("history", [])
    )
    return f"""# {name}-cifar10

A CIFAR-10 source model for test-time adaptation in `testtime`: {arch};
{card.get("params", 0):,} parameters; input float [0, 1] NCHW, normalisation inside; a plain
linear head (no logit scaling at inference).

- Training: {cfg.epochs} epochs, batch {cfg.batch_size}, plain cross-entropy (label smoothing
  {cfg.label_smoothing}), {opt}; warm-up {cfg.warmup_frac:.0%}, lr factor {cfg.lr_ends[0]} -> 1 -> {cfg.lr_ends[1]};
  random translation {cfg.translate} px, {"alternating" if cfg.alternate_flip else "random"} flips;
  seed {cfg.seed}{", bfloat16 autocast" if cfg.bf16 else ""}. Wall time {card.get("wall_s", 0) / 60:.1f} min.
- Data: CIFAR-10 train split ({card.get("train_images", 0):,} images, the project's JPEG copy).
- Clean CIFAR-10 test accuracy: **{card["accuracy"] * 100:.2f}%** ({card.get("test_images", 0):,} test
  images, measured once at the end, never used for choices); ECE {card["ece"] * 100:.2f}%, NLL {card["nll"]:.3f},
  mean max-softmax {card["mean_max_softmax"]:.3f}, fraction of images with prediction entropy
  below E0 = 0.4·ln 10: {card["frac_below_e0"] * 100:.1f}%.
- Reproduce: `testtime zoo train {name} --steps {cfg.epochs} --seed {cfg.seed}` (resumable: `--resume`)
- Load: `testtime.zoo.load_cifar_model("{name}")`

| epoch | train loss | test acc % |
|---|---|---|
{hist}
"""
