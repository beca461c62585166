"""A character-level tokenizer for the embedded models, as a Hugging Face fast tokenizer.

Every character the task formats use is one token (``tokenizers`` WordLevel over
single characters, Fuse decoder), so ``decode(encode(text))`` round-trips
exactly. Encoding prepends ``<bos>`` (the models were trained on
``<bos> prompt solution <eos>``), so any Hugging Face caller that tokenizes a raw
prompt feeds the model what it was trained on.
"""

from __future__ import annotations

import string
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from testtime.store.atomic import atomic_write_json

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
# Digits, lower-case letters (task names, "answer", "wait", "revise step"), and
# the punctuation of the task formats and jsonl-style prompts.
CHARACTERS = string.digits + string.ascii_lowercase + " \n+-*=()>:/.,?"


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *CHARACTERS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every single character (newline included) is its own pre-token.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        clean_up_tokenization_spaces=False,
    )


def save_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """Write the tokenizer files of a model directory, ``special_tokens_map.json`` included
    (recent ``transformers`` no longer writes it, older loaders look for it)."""
    tok = build_tokenizer()
    tok.save_pretrained(str(directory))
    atomic_write_json(Path(directory) / "special_tokens_map.json", tok.special_tokens_map)
    return tok
