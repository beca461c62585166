"""Training batches of the zoo trainers: examples (or behaviour traces) encoded with
their loss mask, length-sorted in groups of steps to cut padding, and a deterministic
function of (seed, step) so a resumed run replays the data of an uninterrupted one."""

from __future__ import annotations

import functools
import math
import random
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from testtime.zoo.reasoner_data import Example, make_example
from testtime.zoo.training import TrainConfig

SORT_GROUP = 8  # steps whose examples are length-sorted together, to cut padding


def encode_example(tokenizer: PreTrainedTokenizerBase, example: Example) -> tuple[list[int], list[int]]:
    """(input ids, labels): ``<bos> segments... <eos>``, labels -100 on untrained segments
    (an :class:`Example`'s context, a behaviour trace's prompt, attempts and injected errors)."""
    ids: list[int] = []
    labels: list[int] = []
    for i, (text, trained) in enumerate(example.segments):
        part = tokenizer(text, add_special_tokens=i == 0).input_ids  # the first starts with <bos>
        ids += part
        labels += part if trained else [-100] * len(part)
    return ids + [tokenizer.eos_token_id], labels + [tokenizer.eos_token_id]


def training_batch(
    tokenizer: PreTrainedTokenizerBase, config: TrainConfig, seed: int, step: int, make: Any = make_example
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch of ``step``: a deterministic function of (seed, step), so resuming
    replays exactly the data an uninterrupted run would have seen. ``make(seed, index)``
    is the example stream (hashable; default: the from-scratch mixture)."""
    group = step // SORT_GROUP
    rows = _sorted_group(tokenizer, config.batch_size, config.n_positions, seed, group, make)
    order = list(range(SORT_GROUP))
    random.Random(f"batches-{seed}-{group}").shuffle(order)
    size = math.ceil(len(rows) / SORT_GROUP)
    chunk = order[step % SORT_GROUP]
    rows = rows[chunk * size : (chunk + 1) * size]
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in rows])
    return ids, labels, mask


@functools.lru_cache(maxsize=1)
def _sorted_group(
    tokenizer: PreTrainedTokenizerBase, batch_size: int, n_positions: int, seed: int, group: int, make: Any
) -> list[tuple[list[int], list[int]]]:
    """The examples of SORT_GROUP consecutive steps, sorted by length (built once per group)."""
    first = group * SORT_GROUP * batch_size
    rows = [encode_example(tokenizer, make(seed, first + i)) for i in range(SORT_GROUP * batch_size)]
    return sorted((r for r in rows if len(r[0]) <= n_positions), key=lambda r: len(r[0]))
