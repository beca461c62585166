"""GRPO's maths, shared by TTRL, ETTRL, SPINE and MRT (spec §9): group-normalised
advantages (Shao et al. 2024), PPO's clipped surrogate (Schulman et al. 2017) as
a token-level mean (DAPO), the k3 KL estimator, ETTRL's entropy advantage
reshaping, SPINE's forking-token mask and entropy band."""

from __future__ import annotations

import torch

EPS = 1e-6


def group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """GRPO advantages for rewards of shape (groups, samples): zero-mean, unit-std per
    group; a group whose rewards are all equal carries no signal (advantage 0)."""
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, unbiased=False, keepdim=True)
    return torch.where(std > EPS, (rewards - mean) / (std + EPS), torch.zeros_like(rewards))


def entropy_reshape(advantages: torch.Tensor, response_entropy: torch.Tensor) -> torch.Tensor:
    """ETTRL's entropy-based advantage reshaping: ``γ_i = 1 + (H̄ - H_i) / H̄`` per group
    (H_i the mean token entropy of response i, H̄ the group mean), ``Â_i = γ_i A_i``:
    confident responses are pushed harder, uncertain ones damped."""
    mean = response_entropy.mean(-1, keepdim=True)
    gamma = 1 + (mean - response_entropy) / mean.clamp_min(EPS)
    return gamma * advantages


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, eps: float
) -> torch.Tensor:
    """PPO's clipped objective as a loss, averaged over the masked tokens (token-level
    mean, as in DAPO, so a mask that keeps few tokens does not rescale the update)."""
    ratio = torch.exp(logp - old_logp)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv)
    return -masked_mean(surrogate, mask)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(π || π_ref) per token (>= 0, 0 iff equal), masked mean."""
    d = ref_logp - logp
    return masked_mean(torch.exp(d) - d - 1, mask)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def forking_mask(entropy: torch.Tensor, mask: torch.Tensor, top: float) -> torch.Tensor:
    """SPINE's forking tokens: the ``top`` fraction of highest-entropy tokens of the batch."""
    if not 0 < top <= 1:
        raise ValueError(f"the forking-token fraction must be in (0, 1], got {top}")
    values = entropy[mask]
    if values.numel() == 0:
        return mask.clone()
    threshold = torch.quantile(values, 1 - top)
    return mask & (entropy >= threshold)


def entropy_band(
    entropy: torch.Tensor, mask: torch.Tensor, low: torch.Tensor | float, high: torch.Tensor | float
) -> torch.Tensor:
    """SPINE's band regulariser ``Σ m_t [max(0, H_t - high) + max(0, low - H_t)]`` (masked
    mean): entropies of the updated tokens are kept inside ``[low, high]`` so they
    neither collapse nor blow up."""
    penalty = torch.relu(entropy - high) + torch.relu(low - entropy)
    return masked_mean(penalty, mask)
