"""Per-token scores of a GPT-2 token classifier — a process reward model: Hugging Face
``GPT2ForTokenClassification`` with one label, read through a sigmoid — on
:class:`~testtime.backends.lean_gpt2.LeanGPT2`, with prefix reuse.

Search scores ``prompt + partial solution`` again at every step (beam, DVTS, MCTS).
Every scored sequence's keys, values and per-token scores are kept in a
:class:`~testtime.backends.prefix_cache.PrefixCache`, so a later sequence extending
it computes only its new tokens; and the sequences of one call that share a prefix
(every candidate of a problem shares its prompt) have it computed once: the call's
common prefix runs first when no entry covers it. Causal attention makes a token's
score independent of what follows it, so reused scores are those a full forward pass
gives, up to float rounding (the keys were computed in other batches).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from testtime.backends.base import BackendError
from testtime.backends.kv_cache import KVCache
from testtime.backends.lean_gpt2 import GPT2Shape, LeanGPT2
from testtime.backends.prefix_cache import PrefixCache, reuse_prefixes


class TokenScorer:
    """``sigmoid(head(GPT-2 hidden state))`` of every token of token sequences, batched
    ``batch_size`` at a time; ``prefix_cache_mb=0`` turns reuse off."""

    def __init__(
        self,
        model: LeanGPT2,
        head_w: torch.Tensor,
        head_b: torch.Tensor,
        *,
        prefix_cache_mb: float = 64.0,
        batch_size: int = 64,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if head_w.shape != (1, model.shape.n_embd) or head_b.shape != (1,):
            raise ValueError(
                f"the scorer reads one label: classifier weight {tuple(head_w.shape)} and bias "
                f"{tuple(head_b.shape)}, expected (1, {model.shape.n_embd}) and (1,)"
            )
        self.model, self.batch_size = model, batch_size
        self.head_w = head_w.to(model.device, model.dtype)[0]
        self.head_b = head_b.to(model.device, model.dtype)[0]
        mb = int(prefix_cache_mb * 2**20)
        self.cache = PrefixCache(mb) if mb > 0 else None

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, **options: float | int) -> TokenScorer:
        """A ``GPT2ForTokenClassification`` directory (``config.json`` + ``model.safetensors``)."""
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        weights = load_file(str(model_dir / "model.safetensors"))
        if "classifier.weight" not in weights:
            raise ValueError(f"{model_dir} holds no token-classification head (classifier.*)")
        model = LeanGPT2(GPT2Shape.from_config(config), weights)
        return cls(model, weights["classifier.weight"], weights["classifier.bias"], **options)

    @property
    def num_parameters(self) -> int:
        return self.model.num_parameters + self.head_w.numel() + 1

    @torch.inference_mode()
    def score(self, sequences: Sequence[Sequence[int]]) -> tuple[list[torch.Tensor], int]:
        """The score of every token of every sequence (one 1-D tensor each), and the
        tokens really computed (those served from the cache excluded)."""
        context = self.model.shape.n_positions
        for i, seq in enumerate(sequences):
            if not 0 < len(seq) <= context:
                raise BackendError(f"sequence {i} has {len(seq)} tokens; the scorer reads 1 to {context}")
        computed = self._shared_prefix(sequences)
        out: list[torch.Tensor] = [torch.empty(0)] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        for g in range(0, len(order), self.batch_size):
            chunk = order[g : g + self.batch_size]
            scores, n = self._run([sequences[i] for i in chunk])
            computed += n
            for i, row in zip(chunk, scores, strict=True):
                out[i] = row
        return out, computed

    def _shared_prefix(self, sequences: Sequence[Sequence[int]]) -> int:
        """Run the sequences' common prefix once (and keep it) unless the cache holds it."""
        if self.cache is None or len(sequences) < 2:
            return 0
        first, common = sequences[0], min(map(len, sequences))
        for seq in sequences[1:]:
            common = next((d for d in range(common) if seq[d] != first[d]), common)
        hit = self.cache.lookup([*first[:common], -1])  # (lookup keeps a last token back)
        if common < 2 or (hit is not None and hit.depth >= common):
            return 0
        return self._run([first[:common]])[1]

    def _run(self, seqs: list[Sequence[int]]) -> tuple[list[torch.Tensor], int]:
        """One batch: left-padded, cached prefixes copied in, the rest computed."""
        m, dev = self.model, self.model.device
        S = max(map(len, seqs))
        pad = torch.tensor([S - len(p) for p in seqs], device=dev)
        ids = torch.zeros(len(seqs), S, dtype=torch.long, device=dev)
        for r, p in enumerate(seqs):
            ids[r, S - len(p) :] = torch.tensor(p, dtype=torch.long)
        kv = KVCache(m.shape, len(seqs), S, S, m.dtype, dev)
        start, hits = reuse_prefixes(self.cache, seqs, S, 1, kv)
        states = m.prefill_states(ids, pad, kv, start)  # (P, S - start, C)
        probs = torch.sigmoid(states @ self.head_w + self.head_b).float()
        rows = []
        for r, (p, hit) in enumerate(zip(seqs, hits, strict=True)):
            first = S - len(p)
            if first >= start:
                row = probs[r, first - start :]
            else:  # columns before start were reused: so are their scores
                assert hit is not None and hit.extra is not None
                row = torch.cat([hit.extra[: start - first], probs[r]])
            rows.append(row)
            if self.cache is not None:
                self.cache.store(
                    p, kv.k[:, r, :, first:].clone(), kv.v[:, r, :, first:].clone(), row.clone()
                )
        return rows, sum(S - max(start, S - len(p)) for p in seqs)
