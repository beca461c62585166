"""Batched, tensor-only image augmentations for CoTTA/RoTTA/PETAL (no torchvision).

Every sample of a batch draws its own random parameters; all operations run on the
batch's device. Images are (B, C, H, W); outputs are clamped to the input batch's
value range (so [0, 1] inputs stay in [0, 1], normalised inputs keep their range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def _uniform(b: int, lo: float, hi: float, ref: Tensor) -> Tensor:
    return torch.empty(b, device=ref.device, dtype=ref.dtype).uniform_(lo, hi)


def random_hflip(x: Tensor, p: float = 0.5) -> Tensor:
    flip = torch.rand(x.shape[0], device=x.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def random_affine(
    x: Tensor,
    degrees: float,
    translate: float,
    scale: tuple[float, float],
    shear: float = 0.0,
    padding_mode: str = "border",
) -> Tensor:
    """Rotation (±degrees), translation (± fraction of size), scale and x-shear, one
    bilinear :func:`F.grid_sample` for the whole batch."""
    b = x.shape[0]
    angle = _uniform(b, -degrees, degrees, x) * (math.pi / 180)
    sh = _uniform(b, -shear, shear, x) * (math.pi / 180)
    s = _uniform(b, scale[0], scale[1], x)
    tx, ty = (_uniform(b, -translate, translate, x) * 2 for _ in range(2))  # grid is [-1, 1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    # inverse map (output → input coordinates): rotate, shear, then scale down by s
    theta = torch.stack(
        [
            torch.stack([cos, -sin + torch.tan(sh) * cos, tx], 1),
            torch.stack([sin, cos + torch.tan(sh) * sin, ty], 1),
        ],
        1,
    ) / torch.stack([s, s, torch.ones_like(s)], 1).unsqueeze(1)  # translation is not scaled
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def color_jitter(
    x: Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    gamma: tuple[float, float] = (1.0, 1.0),
) -> Tensor:
    """Per-sample brightness/contrast/saturation factors in [1 − v, 1 + v] and a gamma
    exponent (applied to the input shifted to be non-negative)."""
    b = x.shape[0]
    view = (b, 1, 1, 1)
    x = x * _uniform(b, 1 - brightness, 1 + brightness, x).view(view)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = torch.lerp(mean, x, _uniform(b, 1 - contrast, 1 + contrast, x).view(view))
    if x.shape[1] == 3 and saturation > 0:
        gray = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = torch.lerp(gray, x, _uniform(b, 1 - saturation, 1 + saturation, x).view(view))
    if gamma != (1.0, 1.0):
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        x = (x - lo).clamp_min(0) ** _uniform(b, gamma[0], gamma[1], x).view(view) + lo
    return x


def gaussian_blur(x: Tensor, sigma: tuple[float, float], kernel_size: int = 5) -> Tensor:
    """Separable Gaussian blur, a different σ per sample (grouped convolution)."""
    b, c, h, w = x.shape
    r = kernel_size // 2
    sig = _uniform(b, sigma[0], sigma[1], x).view(b, 1)
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype).view(1, -1)
    k = torch.exp(-(t**2) / (2 * sig**2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    y = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


@dataclass(frozen=True)
class Augment:
    """A random augmentation pipeline: colour jitter, affine, blur, flip, noise.

    Defaults are CoTTA's CIFAR transform (Wang et al., CVPR 2022), also used as
    RoTTA's strong augmentation; :data:`SOFT_AUGMENT` is CoTTA's ImageNet one."""

    brightness: float = 0.4
    contrast: float = 0.3
    saturation: float = 0.5
    gamma: tuple[float, float] = (0.7, 1.3)
    degrees: float = 15.0
    translate: float = 1 / 16
    scale: tuple[float, float] = (0.9, 1.1)
    shear: float = 0.0
    blur_sigma: tuple[float, float] = (0.001, 0.5)
    flip_p: float = 0.5
    noise_std: float = 0.005

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"augmentations need (B, C, H, W) images, got shape {tuple(x.shape)}")
        lo, hi = x.amin(), x.amax()
        y = color_jitter(x, self.brightness, self.contrast, self.saturation, self.gamma)
        y = random_affine(y, self.degrees, self.translate, self.scale, self.shear)
        y = gaussian_blur(y, self.blur_sigma)
        y = random_hflip(y, self.flip_p)
        y = y + self.noise_std * (hi - lo) * torch.randn_like(y)
        return y.clamp(lo, hi)


COTTA_AUGMENT = Augment()
SOFT_AUGMENT = Augment(
    brightness=0.2,
    contrast=0.15,
    saturation=0.25,
    gamma=(0.85, 1.25),
    degrees=8.0,
    scale=(0.95, 1.05),
    blur_sigma=(0.001, 0.25),
)
