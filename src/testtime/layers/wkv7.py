"""The RWKV-7 state recurrence (the generalised delta rule), recurrent and chunked.

Per head, with an N x N state ``S`` (values x keys) and per-token decay ``d`` (in (0, 1)),
removal key ``kappa`` (unit norm), in-context learning rate ``a``, key ``k``, value ``v``
and receptance ``r`` (Peng et al. 2025, "RWKV-7 Goose with Expressive Dynamic State
Evolution", eq. for wkv)::

    S_t = S_{t-1} A_t + v_t k_t^T,   A_t = diag(d_t) - kappa_t (a_t * kappa_t)^T,   o_t = S_t r_t

Unrolled, ``S_t = S_0 P_t + D_t`` with ``P_t = A_1 ... A_t``: the output splits into the
data part ``D_t r_t`` and the initial state read at the *propagated query*
``q_t = P_t r_t``. :func:`wkv_chunked` computes both with a parallel (Hillis–Steele)
scan over the affine maps ``S -> S A_t + v_t k_t^T`` inside each chunk, carrying
``(P, D)`` between chunks, so any read-out of the initial state (a plain matrix, or
:mod:`testtime.learn.state_tuning`'s kernel-upscaled one) plugs in exactly.
Deviation: public kernels use a WY/UT chunked form; this scan is O(L log L N^3) per chunk,
fine for tiny heads and exact, and :func:`wkv_recurrent` is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def transitions(decay: torch.Tensor, kappa: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``A_t`` (B, H, T, N, N) from (B, H, T, N) inputs."""
    return torch.diag_embed(decay) - kappa.unsqueeze(-1) * (a * kappa).unsqueeze(-2)


def wkv_recurrent(
    r: torch.Tensor, decay: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    kappa: torch.Tensor, a: torch.Tensor, s0: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token by token from state ``s0`` (B, H, N, N): outputs (B, H, T, N), final state."""
    s, outs = s0, []
    trans = transitions(decay, kappa, a)
    for t in range(r.shape[2]):
        s = s @ trans[:, :, t] + v[:, :, t].unsqueeze(-1) * k[:, :, t].unsqueeze(-2)
        outs.append((s @ r[:, :, t].unsqueeze(-1)).squeeze(-1))
    return torch.stack(outs, dim=2), s


@dataclass
class Propagated:
    """What the chunked form returns: ``data`` = D_t r_t and ``query`` = P_t r_t (both
    (B, H, T, N)), and the whole sequence's map ``S_T = S_0 P + D``."""

    data: torch.Tensor
    query: torch.Tensor
    p: torch.Tensor
    d: torch.Tensor

    def final_state(self, s0: torch.Tensor) -> torch.Tensor:
        return s0 @ self.p + self.d


def _scan(trans: torch.Tensor, add: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive prefix composition of S -> S A + B along dim 2 (log2 T parallel steps)."""
    p, d = trans, add
    offset = 1
    while offset < p.shape[2]:
        p_new = torch.cat([p[:, :, :offset], p[:, :, :-offset] @ p[:, :, offset:]], dim=2)
        d = torch.cat([d[:, :, :offset], d[:, :, :-offset] @ p[:, :, offset:] + d[:, :, offset:]], dim=2)
        p, offset = p_new, offset * 2
    return p, d


def wkv_chunked(
    r: torch.Tensor, decay: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    kappa: torch.Tensor, a: torch.Tensor, chunk: int = 16,
    carry: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Propagated:
    """The parallel form, ``chunk`` tokens per scan (chunk >= T: one scan over everything).
    ``carry`` = (P, D) of the tokens before these (a previous call's ``p``, ``d``)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    b, h, t, n = r.shape
    if carry is None:
        eye = torch.eye(n, dtype=r.dtype, device=r.device).expand(b, h, n, n)
        carry = (eye, torch.zeros_like(eye))
    p_c, d_c = carry
    datas, queries = [], []
    for start in range(0, t, chunk):
        sl = slice(start, start + chunk)
        trans = transitions(decay[:, :, sl], kappa[:, :, sl], a[:, :, sl])
        add = v[:, :, sl].unsqueeze(-1) * k[:, :, sl].unsqueeze(-2)
        p_loc, d_loc = _scan(trans, add)
        u = (p_loc @ r[:, :, sl].unsqueeze(-1)).squeeze(-1)  # P_loc r
        queries.append(torch.einsum("bhij,bhtj->bhti", p_c, u))
        datas.append(torch.einsum("bhij,bhtj->bhti", d_c, u) + (d_loc @ r[:, :, sl].unsqueeze(-1)).squeeze(-1))
        p_c, d_c = p_c @ p_loc[:, :, -1], d_c @ p_loc[:, :, -1] + d_loc[:, :, -1]
    return Propagated(torch.cat(datas, 2), torch.cat(queries, 2), p_c, d_c)


def read_matrix(s0: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """``S_0 q_t`` for an initial state (H, N, N) or (B, H, N, N)."""
    if s0.dim() == 3:
        s0 = s0.unsqueeze(0).expand(query.shape[0], *s0.shape)
    return torch.einsum("bhij,bhtj->bhti", s0, query)
