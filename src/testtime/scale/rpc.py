"""RPC: Perplexity Consistency + Reasoning Pruning (Zhou et al., 2025; spec §4).

1. Path probability p_i = exp(mean token log-prob of y_i).
2. Reasoning pruning: fit a two-component Weibull mixture to {p_i} by maximum
   likelihood; drop path i when the low-mean component explains it better than the
   high-mean one *and* p_i is below the mean path probability.
3. Perplexity consistency: P̂(a) = Σ p(t) over the unique completion strings t
   with answer a; answer argmax_a P̂(a), confidence P̂(â) / Σ_a P̂(a).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln

from testtime.backends.base import UnsupportedCapability
from testtime.scale.base import STRATEGIES, Candidate
from testtime.scale.pool import PoolStrategy, Selection
from testtime.tasks.base import Problem, Task

# Initial (w, k1, λ1, k2, λ2) and bounds, as in the paper's reference procedure.
_INIT = np.array([0.5, 1.0, 1.0, 1.5, 2.0])
_BOUNDS = [(0.2, 0.8)] + [(0.01, None)] * 4
_HUGE = 1e30


def _weibull_terms(x: np.ndarray, k: float, lam: float) -> tuple[np.ndarray, ...]:
    """log pdf of Weibull(k, λ) at x and its derivatives in k and λ."""
    log_z = np.log(x / lam)
    # exp capped: the optimiser probes extreme shapes, where z**k would overflow.
    z_k = np.exp(np.minimum(k * log_z, 700.0))
    logpdf = math.log(k / lam) + (k - 1.0) * log_z - z_k
    d_k = 1.0 / k + log_z - z_k * log_z
    d_lam = (k / lam) * (z_k - 1.0)
    return logpdf, d_k, d_lam


def _mixture_terms(x: np.ndarray, theta: Sequence[float]) -> tuple[np.ndarray, ...]:
    """Per-point log-likelihood of the mixture, log w·f1 and log (1−w)·f2."""
    w, k1, l1, k2, l2 = theta
    a = math.log(w) + _weibull_terms(x, k1, l1)[0]
    b = math.log1p(-w) + _weibull_terms(x, k2, l2)[0]
    return np.logaddexp(a, b), a, b


def fit_weibull_mixture(x: Sequence[float]) -> np.ndarray:
    """Maximum-likelihood (w, k1, λ1, k2, λ2) of w·Weibull(k1, λ1) + (1−w)·Weibull(k2, λ2)."""
    data = np.clip(np.asarray(x, dtype=float), 1e-12, None)

    def nll_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, k1, l1, k2, l2 = theta
        with np.errstate(over="ignore", invalid="ignore"):
            lp1, dk1, dl1 = _weibull_terms(data, k1, l1)
            lp2, dk2, dl2 = _weibull_terms(data, k2, l2)
            a, b = math.log(w) + lp1, math.log1p(-w) + lp2
            total = np.logaddexp(a, b)
            r1 = np.exp(a - total)  # responsibility of component 1
            r2 = 1.0 - r1
            grad = -np.array([
                (r1 / w - r2 / (1.0 - w)).sum(),
                (r1 * dk1).sum(), (r1 * dl1).sum(), (r2 * dk2).sum(), (r2 * dl2).sum(),
            ])
        nll = -float(total.sum())
        if not (math.isfinite(nll) and np.isfinite(grad).all()):
            return _HUGE, np.zeros(5)  # makes the line search step back
        return nll, grad

    res = minimize(nll_and_grad, _INIT, jac=True, method="L-BFGS-B", bounds=_BOUNDS)
    return res.x


def prune_mask(probs: Sequence[float]) -> np.ndarray:
    """True for the paths that survive reasoning pruning (spec §4 step 2)."""
    p = np.asarray(probs, dtype=float)
    keep = np.ones(len(p), dtype=bool)
    if len(np.unique(p)) < 2:  # nothing separates a low from a high component
        return keep
    w, k1, l1, k2, l2 = fit_weibull_mixture(p)
    _, log_a, log_b = _mixture_terms(np.clip(p, 1e-12, None), (w, k1, l1, k2, l2))
    # The "high" component is the one with the larger mean λ·Γ(1 + 1/k).
    mean_a = l1 * math.exp(gammaln(1.0 + 1.0 / k1))
    mean_b = l2 * math.exp(gammaln(1.0 + 1.0 / k2))
    log_low, log_high = (log_a, log_b) if mean_a < mean_b else (log_b, log_a)
    return ~((log_low > log_high) & (p < p.mean()))


def perplexity_consistency(
    candidates: Sequence[Candidate], probs: Sequence[float], problem: Problem, task: Task
) -> dict[str, tuple[str, float]]:
    """P̂ per answer key, summing each unique completion string once: key -> (answer, P̂)."""
    seen: set[str] = set()
    mass: dict[str, tuple[str, float]] = {}
    for cand, p in zip(candidates, probs, strict=True):
        if cand.answer is None or cand.text in seen:
            continue
        seen.add(cand.text)
        key = task.answer_key(problem, cand.answer)
        spelling, total = mass.get(key, (cand.answer, 0.0))
        mass[key] = (spelling, total + float(p))
    return mass


@STRATEGIES.register("rpc")
class RPC(PoolStrategy):
    name = "rpc"
    requires = ("logprobs",)

    def select(self, pool: Sequence[Candidate], problem: Problem, task: Task) -> Selection:
        if any(c.mean_logprob is None for c in pool):
            raise UnsupportedCapability("rpc needs token logprobs, the backend returned none")
        probs = np.exp([c.mean_logprob for c in pool])
        keep = prune_mask(probs)
        kept = [c for c, k in zip(pool, keep, strict=True) if k]
        mass = perplexity_consistency(kept, probs[keep], problem, task)
        if not mass:
            return None, {"pruned": int((~keep).sum())}
        best = max(mass, key=lambda key: mass[key][1])
        total = sum(m for _, m in mass.values())
        answer, best_mass = mass[best]
        return answer, {"confidence": best_mass / total, "pruned": int((~keep).sum())}
