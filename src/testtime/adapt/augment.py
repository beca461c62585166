"""Batched, tensor-only image augmentations for CoTTA/RoTTA/PETAL (no torchvision).

:class:`Augment` follows CoTTA's test-time transform as the reference codebases run it
(``get_tta_transforms`` in qinenergy/cotta and mariodoebler/test-time-adaptation):
clip to [0, 1]; brightness, contrast, saturation, hue and gamma in a *random order*;
edge padding by half the image size, a random affine (rotation, integer translation
of up to ``translate`` × the padded size, scale), Gaussian blur (kernel 5), centre
crop (here: one ``grid_sample`` with border padding, the same as pad + affine + crop);
horizontal flip; Gaussian noise; clip. Torchvision transforms applied to a batch
tensor draw **one** set of parameters per call, so by default every image of a batch
gets the same draw (``per_image=True`` draws per image instead). Deviations: the blur
pads by replication (torchvision reflects), and the colour ops act on the whole batch
through tensor formulas equal to torchvision's ``adjust_*`` for float images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _uniform(b: int, lo: float, hi: float, ref: Tensor) -> Tensor:
    return torch.empty(b, device=ref.device, dtype=ref.dtype).uniform_(lo, hi)


def _draw(x: Tensor, lo: float, hi: float, per_image: bool) -> Tensor:
    """Factors of shape (B,): one draw for the batch, or one per image."""
    b = x.shape[0]
    return _uniform(b if per_image else 1, lo, hi, x).expand(b)


def _gray(x: Tensor) -> Tensor:
    return (x * x.new_tensor(_GRAY).view(1, 3, 1, 1)).sum(1, keepdim=True)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of RGB images in [0, 1] by ``shift`` (B,) turns (HSV round trip)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), 0 * maxc)
    h = (h + shift.view(-1, 1, 1)) % 1.0
    # HSV -> RGB
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    v = maxc
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros_like(x)
    for k, (cr, cg, cb) in enumerate(choices):
        mask = (i == k).unsqueeze(1)
        out = torch.where(mask, torch.stack([cr, cg, cb], 1), out)
    return out


def color_jitter(
    x: Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float = 0.0,
    gamma: tuple[float, float] = (1.0, 1.0),
    *,
    per_image: bool = False,
    order: list[int] | None = None,
) -> Tensor:
    """Brightness/contrast/saturation factors in [1 − v, 1 + v], a hue shift in
    [−hue, hue] and a gamma exponent, applied in ``order`` (a permutation of 0..4;
    default: random, as ColorJitterPro), each clamped to [0, 1] like torchvision."""
    view = (x.shape[0], 1, 1, 1)
    for op in order if order is not None else torch.randperm(5).tolist():
        if op == 0 and brightness > 0:
            x = (x * _draw(x, 1 - brightness, 1 + brightness, per_image).view(view)).clamp(0, 1)
        elif op == 1 and contrast > 0:
            mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
            f = _draw(x, 1 - contrast, 1 + contrast, per_image).view(view)
            x = torch.lerp(mean, x, f).clamp(0, 1)
        elif op == 2 and saturation > 0 and x.shape[1] == 3:
            f = _draw(x, 1 - saturation, 1 + saturation, per_image).view(view)
            x = torch.lerp(_gray(x), x, f).clamp(0, 1)
        elif op == 3 and hue > 0 and x.shape[1] == 3:
            x = adjust_hue(x, _draw(x, -hue, hue, per_image))
        elif op == 4 and gamma != (1.0, 1.0):
            g = _draw(x, gamma[0], gamma[1], per_image).view(view)
            x = (x.clamp(1e-8, 1.0) ** g).clamp(0, 1)
    return x


def random_affine(
    x: Tensor,
    degrees: float,
    translate: float,
    scale: tuple[float, float],
    *,
    per_image: bool = False,
    pad_factor: float = 2.0,
) -> Tensor:
    """Rotation (±degrees), integer-pixel translation (± ``translate`` × the padded
    size, ``pad_factor`` × the image size) and scale about the centre, one bilinear
    :func:`F.grid_sample` with border padding (= edge padding, affine, centre crop)."""
    b, _, h, w = x.shape
    angle = _draw(x, -degrees, degrees, per_image) * (math.pi / 180)
    s = _draw(x, scale[0], scale[1], per_image)
    shifts = []
    for size in (w, h):
        limit = translate * pad_factor * size
        pixels = torch.round(_draw(x, -limit, limit, per_image))
        shifts.append(pixels * 2.0 / size)  # grid coordinates span [-1, 1]
    tx, ty = shifts
    cos, sin = torch.cos(angle), torch.sin(angle)
    # inverse map (output -> input coordinates): rotate, then scale down by s
    theta = torch.stack(
        [torch.stack([cos / s, -sin / s, tx], 1), torch.stack([sin / s, cos / s, ty], 1)], 1
    )
    grid = F.affine_grid(theta, [b, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def gaussian_blur(
    x: Tensor, sigma: tuple[float, float], kernel_size: int = 5, *, per_image: bool = False
) -> Tensor:
    """Separable Gaussian blur with σ drawn from ``sigma`` (grouped convolution)."""
    b, c, h, w = x.shape
    r = kernel_size // 2
    sig = _draw(x, sigma[0], sigma[1], per_image).reshape(b, 1)
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype).view(1, -1)
    k = torch.exp(-(t**2) / (2 * sig**2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    y = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


def random_hflip(x: Tensor, p: float = 0.5, *, per_image: bool = False) -> Tensor:
    flip = _draw(x, 0.0, 1.0, per_image) < p
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


@dataclass(frozen=True)
class Augment:
    """CoTTA's random test-time transform (see the module docstring); defaults are
    its CIFAR setting, also RoTTA's strong augmentation; :data:`SOFT_AUGMENT` is the
    ImageNet ("soft") one. Inputs must be RGB-like images in [0, 1]."""

    brightness: float = 0.4
    contrast: float = 0.3
    saturation: float = 0.5
    hue: float = 0.06
    gamma: tuple[float, float] = (0.7, 1.3)
    degrees: float = 15.0
    translate: float = 1 / 16
    scale: tuple[float, float] = (0.9, 1.1)
    blur_sigma: tuple[float, float] = (0.001, 0.5)
    flip_p: float = 0.5
    noise_std: float = 0.005
    per_image: bool = False

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"augmentations need (B, C, H, W) images, got shape {tuple(x.shape)}")
        one = self.per_image
        y = color_jitter(
            x.clamp(0, 1), self.brightness, self.contrast, self.saturation, self.hue,
            self.gamma, per_image=one,
        )  # fmt: skip
        y = random_affine(y, self.degrees, self.translate, self.scale, per_image=one)
        y = gaussian_blur(y, self.blur_sigma, per_image=one)
        y = random_hflip(y, self.flip_p, per_image=one)
        y = y + self.noise_std * torch.randn_like(y)
        return y.clamp(0, 1)


COTTA_AUGMENT = Augment()
SOFT_AUGMENT = Augment(
    brightness=0.2,
    contrast=0.15,
    saturation=0.25,
    hue=0.03,
    gamma=(0.85, 1.15),
    degrees=8.0,
    scale=(0.95, 1.05),
    blur_sigma=(0.001, 0.25),
)
