"""The trainable policy for test-time learning: a Hugging Face GPT-2 (gradients)
paired with the lean KV-cached sampler (rollouts) reading the same weights.

After every optimizer step :meth:`Policy.refresh` rebuilds the sampler's
:class:`~testtime.backends.sampler.LeanGPT2` from the current ``state_dict``
(a copy of ~2 M parameters for TinyReasoner: negligible next to a rollout).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from testtime.backends.base import Completion, SamplingParams, Usage
from testtime.backends.sampler import Detokenizer, GPT2Shape, LeanGPT2, LeanSampler


@dataclass
class Rollout:
    """One sampled completion as token ids (EOS included when the sample ended on it)."""

    prompt_ids: list[int]
    ids: list[int]
    text: str
    finish_reason: str

    @property
    def length(self) -> int:
        return len(self.ids)


@dataclass
class TokenStats:
    """Per-token log-probs and entropies of completions, right-padded, with ``mask``."""

    logp: torch.Tensor  # (B, T)
    entropy: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T) bool, True on completion tokens


class Policy:
    """A GPT-2 model directory loaded for training and fast sampling."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        config_file = self.model_dir / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"no model directory at {self.model_dir} (config.json missing)")
        config = json.loads(config_file.read_text())
        if config.get("model_type") != "gpt2":
            raise ValueError(
                f"test-time learning trains GPT-2 checkpoints (the lean sampler's model); "
                f"{self.model_dir} holds {config.get('model_type')!r}"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.model = GPT2LMHeadModel.from_pretrained(str(self.model_dir)).float()
        self.model.eval()  # no dropout: rollouts and gradients see the same function
        tok = self.tokenizer
        self.eos_id = tok.eos_token_id
        # Prepend BOS when it is distinct from EOS (as LocalGenerator does: TinyReasoner
        # is trained on "<bos> prompt solution <eos>").
        self.bos_id = tok.bos_token_id if tok.bos_token_id not in (None, self.eos_id) else None
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (self.eos_id or 0)
        self.detok = Detokenizer(tok)
        self.shape = GPT2Shape.from_config(self.model.config.to_dict())
        self.n_positions = self.shape.n_positions
        self._sampler: LeanSampler | None = None

    # ----- weights -------------------------------------------------------------------
    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def refresh(self, state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
        """Make the sampler read the current weights (or ``state_dict``, e.g. merged LoRA)."""
        sd = self.model.state_dict() if state_dict is None else state_dict
        lean = LeanGPT2(self.shape, sd)
        eos = {self.eos_id} if self.eos_id is not None else set()
        self._sampler = LeanSampler(lean, self.detok, eos)

    @property
    def sampler(self) -> LeanSampler:
        if self._sampler is None:
            self.refresh()
        assert self._sampler is not None
        return self._sampler

    def weights_finite(self) -> bool:
        return all(torch.isfinite(p).all() for p in self.model.parameters())

    def save(self, out: str | Path) -> None:
        """Write the model + tokenizer to ``out`` atomically (a temp dir renamed into place)."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        try:
            self.model.save_pretrained(str(tmp), safe_serialization=True)
            self.tokenizer.save_pretrained(str(tmp))
            old = out.with_name(f".{out.name}.old")
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # ----- sampling ------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        return [self.bos_id, *ids] if self.bos_id is not None else ids

    def completion_ids(self, completion: Completion) -> list[int]:
        """The generated ids, EOS included when the sample ended on it (re-encoded from the
        text for backends that do not report ids)."""
        if completion.token_ids is not None:
            return list(completion.token_ids)
        ids = self.tokenizer.encode(completion.text, add_special_tokens=False)
        ended_on_eos = completion.finish_reason == "stop" and completion.stop_string is None
        return [*ids, self.eos_id] if ended_on_eos and self.eos_id is not None else ids

    def rollouts(
        self,
        prompt_ids: Sequence[Sequence[int]],
        n: int,
        *,
        temperature: float,
        max_tokens: int,
        seed: int | None,
        stop: tuple[str, ...] = (),
    ) -> tuple[list[list[Rollout]], Usage]:
        """``n`` samples per id prompt with the lean sampler (``max_tokens`` capped by the context)."""
        longest = max(len(p) for p in prompt_ids)
        room = self.n_positions - longest
        if room < 1:
            raise ValueError(f"a prompt of {longest} tokens leaves no room in the {self.n_positions}-token context")
        params = SamplingParams(
            n=n, temperature=temperature, max_tokens=min(max_tokens, room), seed=seed, stop=stop
        )
        result = self.sampler.generate([list(p) for p in prompt_ids], params)
        out = [
            [Rollout(list(p), self.completion_ids(c), c.text, c.finish_reason) for c in row]
            for p, row in zip(prompt_ids, result.completions, strict=True)
        ]
        return out, result.usage

    def sample_texts(
        self, prompts: Sequence[str], n: int, *, temperature: float, max_tokens: int, seed: int | None
    ) -> list[list[str]]:
        rows, _ = self.rollouts(
            [self.encode_prompt(p) for p in prompts],
            n,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
        )
        return [[r.text for r in row] for row in rows]

    # ----- scoring -------------------------------------------------------------------
    def batch(
        self, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded (input ids, attention mask, targets, target mask) for scoring
        completion tokens: target j of row b is ``completion_ids[b][j]``."""
        seqs = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids, strict=True)]
        S = max(len(s) for s in seqs)
        if S > self.n_positions:
            raise ValueError(f"a sequence of {S} tokens exceeds the {self.n_positions}-token context")
        T = max(1, max(len(c) for c in completion_ids))
        ids = torch.full((len(seqs), S), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), S), dtype=torch.long)
        pos = torch.zeros((len(seqs), T), dtype=torch.long)  # logit position of each target
        targets = torch.zeros((len(seqs), T), dtype=torch.long)
        tmask = torch.zeros((len(seqs), T), dtype=torch.bool)
        for b, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
            ids[b, : len(seqs[b])] = torch.tensor(seqs[b])
            attn[b, : len(seqs[b])] = 1
            k = len(c)
            if k:
                pos[b, :k] = torch.arange(len(p) - 1, len(p) - 1 + k)
                targets[b, :k] = torch.tensor(c)
                tmask[b, :k] = True
        return ids, attn, torch.stack([pos, targets]), tmask

    def token_stats(
        self,
        prompt_ids: Sequence[Sequence[int]],
        completion_ids: Sequence[Sequence[int]],
        *,
        model: torch.nn.Module | None = None,
    ) -> TokenStats:
        """Log-probs of the completion tokens and the entropy of each predictive
        distribution (differentiable; wrap in ``torch.no_grad()`` for old/ref stats)."""
        ids, attn, (pos, targets), tmask = self.batch(prompt_ids, completion_ids)
        logits = (model or self.model)(input_ids=ids, attention_mask=attn).logits
        logits = logits.gather(1, pos[..., None].expand(-1, -1, logits.shape[-1])).float()
        logprobs = torch.log_softmax(logits, -1)
        logp = logprobs.gather(-1, targets[..., None])[..., 0]
        entropy = -(logprobs.exp() * logprobs).sum(-1)
        zero = torch.zeros((), dtype=logp.dtype)
        return TokenStats(torch.where(tmask, logp, zero), torch.where(tmask, entropy, zero), tmask)
