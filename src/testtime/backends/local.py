"""In-process generation from a Hugging Face model directory.

``engine="lean"`` runs GPT-2 checkpoints on :class:`~testtime.backends.sampler.LeanSampler`
(KV-cached, prefix-shared, compacting); ``engine="hf"`` runs plain
``model.generate()`` and serves every causal LM transformers can load. Both
engines share the stop / EOS / length / logprob semantics of
:class:`~testtime.backends.sampler.RowState` (documented in ``sampler``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from testtime.backends.base import (
    CancelToken,
    FinishCallback,
    GenerationResult,
    Generator,
    SamplingParams,
    Usage,
)
from testtime.backends.prefix_cache import PrefixCache
from testtime.backends.sampler import (
    Detokenizer,
    LeanGPT2,
    LeanSampler,
    RowState,
    check_prompts,
    collect,
    plan_chunks,
)
from testtime.backends.seeds import row_seeds

ENGINES = ("lean", "hf")


class _RowStops(StoppingCriteria):
    """Feeds every token ``generate()`` produces through the shared RowState checks,
    so EOS / stop strings / length / cancel / on_finish behave as in the lean engine."""

    def __init__(
        self,
        rows: list[RowState],
        index: list[tuple[int, int]],
        params: SamplingParams,
        max_tokens: int,
        detok: Detokenizer,
        eos: set[int],
        cancel: CancelToken | None,
        on_finish: FinishCallback | None,
    ) -> None:
        self.rows, self.index, self.params, self.max_tokens = rows, index, params, max_tokens
        self.detok, self.eos, self.cancel, self.on_finish = detok, eos, cancel, on_finish

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: object) -> torch.Tensor:
        for r, t in enumerate(input_ids[:, -1].tolist()):
            st = self.rows[r]
            if st.done:
                continue
            if (
                st.push(
                    t,
                    None,
                    eos=self.eos,
                    stops=self.params.stop,
                    detok=self.detok,
                    max_tokens=self.max_tokens,
                )
                and self.on_finish is not None
            ):
                self.on_finish(*self.index[r], st.completion(self.detok, self.eos, False))
        stop_all = self.cancel is not None and self.cancel.cancelled
        return torch.tensor([stop_all or st.done for st in self.rows])


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


class LocalGenerator(Generator):
    """A model directory (``config.json``, weights, tokenizer) sampled in this process.

    ``add_bos=None`` prepends the tokenizer's BOS token when it has one distinct
    from EOS (TinyReasoner is trained on ``<bos> prompt solution <eos>``; plain
    GPT-2, whose BOS is its EOS, is prompted without it). ``ignore_eos`` samples
    through EOS (fixed-length samples for throughput benchmarks). ``prefix_cache_mb``
    bounds the lean engine's cache of keys/values reused by prompts that extend earlier
    samples (0 turns it off; see :mod:`~testtime.backends.prefix_cache`)."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        engine: str = "lean",
        device: str = "cpu",
        dtype: str | torch.dtype = "float32",
        max_batch: int = 256,
        add_bos: bool | None = None,
        ignore_eos: bool = False,
        prefix_cache_mb: float = 64.0,
    ) -> None:
        from transformers import AutoTokenizer

        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
        self.model_dir = Path(model_dir)
        config_file = self.model_dir / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"no model directory at {self.model_dir} (config.json missing)")
        config = json.loads(config_file.read_text())
        if engine == "lean" and config.get("model_type") != "gpt2":
            warnings.warn(
                f"the lean sampler knows GPT-2 only; {config.get('model_type')!r} model at "
                f"{self.model_dir} runs on engine 'hf' (transformers generate)",
                stacklevel=2,
            )
            engine = "hf"
        self.engine, self.device, self.dtype = engine, device, _dtype(dtype)
        self.name = f"local:{self.model_dir.name}:{engine}"
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        tok = self.tokenizer
        self.eos_ids = {t for t in (tok.eos_token_id,) if t is not None}
        cfg_eos = config.get("eos_token_id")
        self.eos_ids |= set(cfg_eos if isinstance(cfg_eos, list) else [cfg_eos]) - {None}
        if add_bos is None:
            add_bos = tok.bos_token_id is not None and tok.bos_token_id not in self.eos_ids
        if ignore_eos:
            self.eos_ids = set()
        self.add_bos = add_bos
        self.detok = Detokenizer(tok)
        self.max_batch = max_batch
        self.n_positions = int(
            config.get("n_positions")
            or config.get("max_position_embeddings")
            or tok.model_max_length
        )
        if engine == "lean":
            self.lean = LeanGPT2.from_pretrained(self.model_dir, dtype=self.dtype, device=device)
            cache = PrefixCache(int(prefix_cache_mb * 2**20)) if prefix_cache_mb > 0 else None
            self.sampler = LeanSampler(
                self.lean, self.detok, self.eos_ids, max_batch=max_batch, prefix_cache=cache
            )
            self._num_params = self.lean.num_parameters
        else:
            from transformers import AutoModelForCausalLM

            self.hf_model = (
                AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=self.dtype)
                .to(device)
                .eval()
            )
            self._num_params = sum(p.numel() for p in self.hf_model.parameters())
            if ignore_eos:  # generate() would otherwise fall back to the config's EOS
                self.hf_model.generation_config.eos_token_id = None

    @property
    def num_parameters(self) -> int:
        return self._num_params

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids the model is conditioned on (BOS added per ``add_bos``)."""
        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        if self.add_bos:
            ids = [self.tokenizer.bos_token_id, *ids]
        return ids

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        on_finish: FinishCallback | None = None,
    ) -> GenerationResult:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not one string")
        ids = [self.encode_prompt(p) for p in prompts]
        if self.engine == "lean":
            return self.sampler.generate(ids, params, cancel=cancel, on_finish=on_finish)
        return self._hf_generate(ids, params, cancel, on_finish)

    @torch.inference_mode()
    def _hf_generate(
        self,
        prompt_ids: list[list[int]],
        params: SamplingParams,
        cancel: CancelToken | None,
        on_finish: FinishCallback | None,
    ) -> GenerationResult:
        """``model.generate()``; the prompt is prefilled once per sample (counted so).
        Seeds use torch's global RNG inside a forked RNG state, so callers' RNG is untouched.
        Seeded, each prompt is sampled alone from its own seed (``row_seeds``), so its
        samples do not depend on its batch-mates, as on the lean engine (but prompts
        are then not batched together)."""
        check_prompts(prompt_ids, self.n_positions)
        states = [[RowState() for _ in range(params.n)] for _ in prompt_ids]
        usage = Usage(calls=1)
        detok, eos = self.detok, self.eos_ids
        pad_id = self.tokenizer.pad_token_id
        pad_id = pad_id if pad_id is not None else next(iter(eos), 0)

        lengths = [len(p) for p in prompt_ids]
        seeds = None if params.seed is None else row_seeds(params.seed, prompt_ids, 1)
        chunks = (
            plan_chunks(lengths, params.n, self.max_batch) if seeds is None
            else [([i], j0, j1) for i in range(len(lengths))
                  for _, j0, j1 in plan_chunks([lengths[i]], params.n, self.max_batch)]
        )  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            for group, j0, j1 in chunks:
                if cancel is not None and cancel.cancelled:
                    break
                if seeds is not None and j0 == 0:
                    torch.manual_seed(seeds[group[0]][0])
                S = max(len(prompt_ids[i]) for i in group)
                ids = torch.full((len(group), S), pad_id, dtype=torch.long)
                mask = torch.zeros((len(group), S), dtype=torch.long)
                for r, i in enumerate(group):
                    ids[r, S - len(prompt_ids[i]) :] = torch.tensor(prompt_ids[i])
                    mask[r, S - len(prompt_ids[i]) :] = 1
                usage.prompt_tokens += (j1 - j0) * sum(len(prompt_ids[i]) for i in group)
                rows = [states[i][j] for i in group for j in range(j0, j1)]
                index = [(i, j) for i in group for j in range(j0, j1)]
                max_new = min(params.max_tokens, self.n_positions - S)
                sampling = params.temperature > 0
                out = self.hf_model.generate(
                    input_ids=ids.repeat_interleave(j1 - j0, 0).to(self.device),
                    attention_mask=mask.repeat_interleave(j1 - j0, 0).to(self.device),
                    do_sample=sampling,
                    temperature=params.temperature if sampling else None,
                    top_p=params.top_p if sampling else None,
                    # HF's default top_k=50 would change the distribution
                    top_k=0 if sampling else None,
                    max_new_tokens=max_new,
                    pad_token_id=pad_id,
                    eos_token_id=sorted(eos) or None,
                    stopping_criteria=StoppingCriteriaList(
                        [_RowStops(rows, index, params, max_new, detok, eos, cancel, on_finish)]
                    ),
                    return_dict_in_generate=True,
                    output_logits=params.logprobs,
                )
                if params.logprobs:
                    # Untempered log-probs from the raw logits, as in the lean engine.
                    lp = torch.stack(out.logits, 1).float().log_softmax(-1)  # (rows, steps, V)
                    gen_ids = out.sequences[:, S:]
                    for r, st in enumerate(rows):
                        k = len(st.ids)
                        st.logprobs = lp[r, torch.arange(k), gen_ids[r, :k]].tolist()
        return collect(states, detok, eos, params.logprobs, usage)
