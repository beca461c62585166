"""CIFAR-10 source networks of the fast recipe: the airbench94 convnet and a small ViT.

- :class:`AirNet` — the 8-layer convnet of airbench94 (Jordan, "94% on CIFAR-10 in 3.29
  seconds on a single GPU", 2024; after Page 2018 and hlb-CIFAR10): a frozen 2×2
  patch-whitening convolution (weights from the training images' patch covariance,
  learnable bias), GELU, three conv–pool–norm–GELU–conv–norm–GELU groups (widths
  64/256/256, identity-initialised), 3×3 max-pool and a linear head without bias.
  ``norm="bn"`` (BatchNorm, training momentum 0.4) or ``"gn"`` (GroupNorm). The logit
  scale 1/9 of the recipe is a *training* reparametrisation: :meth:`fold_head_scale`
  moves it into the head's weights before export, so the shipped model is a plain
  linear head on the features (same function, no logit scaling).
- :class:`CifarViT` — a small LayerNorm vision transformer (patch 4, class token,
  pre-norm blocks named ``blocks`` and a final ``norm`` as timm's, so SAR's defaults
  find them), SAR's target architecture.

Both take float images in [0, 1], NCHW (normalisation inside), and end in an
``nn.Linear`` whose input is the penultimate feature (what LAME/CAFA hook).
"""

from __future__ import annotations

import torch
from torch import nn

from testtime.zoo.cifar_resnet import Normalize

WHITEN_KERNEL = 2


def _norm(kind: str, channels: int, groups: int, momentum: float) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(channels, momentum=momentum)
    if kind == "gn":
        return nn.GroupNorm(min(groups, channels), channels)
    raise ValueError(f"unknown norm {kind!r}; valid: bn, gn")


class _Group(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str, groups: int, momentum: float) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding="same", bias=False),
            nn.MaxPool2d(2),
            _norm(norm, cout, groups, momentum),
            nn.GELU(),
            nn.Conv2d(cout, cout, 3, padding="same", bias=False),
            _norm(norm, cout, groups, momentum),
            nn.GELU(),
        )
        for m in self:
            if isinstance(m, nn.Conv2d):  # identity (dirac) init of the first cin filters
                nn.init.dirac_(m.weight.data[: m.weight.shape[1]])


class AirNet(nn.Module):
    """The airbench94 convnet (see the module docstring); ``config`` is a CifarConfig."""

    def __init__(self, config) -> None:
        super().__init__()
        w1, w2, w3 = config.widths
        n, g, mom = config.norm, config.groups, config.bn_momentum
        width0 = 2 * 3 * WHITEN_KERNEL**2
        self.config = config
        self.normalize = Normalize(config.mean, config.std)
        self.whiten = nn.Conv2d(3, width0, WHITEN_KERNEL, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        self.body = nn.Sequential(
            nn.GELU(),
            _Group(width0, w1, n, g, mom),
            _Group(w1, w2, n, g, mom),
            _Group(w2, w3, n, g, mom),
            nn.MaxPool2d(3),
            nn.Flatten(),
        )
        self.fc = nn.Linear(w3, config.num_classes, bias=False)
        self.head_scale = config.head_scale

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first convolution to ± the eigenvectors of the 2×2 patch covariance of
        ``images`` (float [0, 1] NCHW) scaled by 1/√(λ + eps) (Page 2018; airbench)."""
        x = self.normalize(images.float())
        c, k = x.shape[1], WHITEN_KERNEL
        patches = x.unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c * k * k)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
        filters = (eigenvectors / torch.sqrt(eigenvalues + eps).unsqueeze(1)).view(-1, c, k, k)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))

    @torch.no_grad()
    def fold_head_scale(self) -> None:
        """Move the training logit scale into the head weights (logits unchanged)."""
        self.fc.weight.mul_(self.head_scale)
        self.head_scale = 1.0
        self.config.head_scale = 1.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.whiten(self.normalize(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(self.features(x))
        return out * self.head_scale if self.head_scale != 1.0 else out


class _Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class CifarViT(nn.Module):
    """A small LayerNorm ViT for 32×32 images: ``widths[0]``-dim tokens of
    ``patch``×``patch`` patches plus a class token, ``depth`` blocks, final LayerNorm,
    linear head on the class token."""

    def __init__(self, config) -> None:
        super().__init__()
        dim, p = config.widths[0], config.patch
        if 32 % p:
            raise ValueError(f"patch must divide 32, got {p}")
        self.config = config
        self.normalize = Normalize(config.mean, config.std)
        self.patch_embed = nn.Conv2d(3, dim, p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (32 // p) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(
            *(_Block(dim, config.heads, config.mlp_ratio) for _ in range(config.depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, config.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(self.normalize(x)).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], 1)
        tokens = self.blocks(tokens + self.pos_embed)
        return self.norm(tokens[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
