"""Tiny byte-level BPE tokenizers trained on toy text, wrapped in transformers' own tokenizer classes.

Byte-level means any text is encodable (a name never seen in training falls back to bytes), which a
captioner that copies names out of alt-texts needs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable

logger = logging.getLogger(__name__)

__all__ = ["BART_SPECIAL_TOKENS", "GPT2_SPECIAL_TOKENS", "train_bpe_tokenizer"]

# Ids follow the originals: bart-large has <s>=0 <pad>=1 </s>=2 <unk>=3; <mask> is ours at 4.
BART_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
GPT2_SPECIAL_TOKENS = ("<|endoftext|>", "<pad>")


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    out_dir: str | os.PathLike | None = None,
    kind: str = "gpt2",
    min_frequency: int = 2,
    add_prefix_space: bool = False,
):
    """Train a byte-level BPE on `texts` and return it as a transformers tokenizer.

    kind="gpt2": a `GPT2Tokenizer`, <|endoftext|> as bos/eos/unk, a separate <pad>, left padding (decoder-only
    models generate after the prompt). kind="bart": a `BartTokenizer` (RoBERTa-style: `<s> ... </s>` added,
    <mask> for infilling). Saved with `save_pretrained` to `out_dir` if given.

    `add_prefix_space` (gpt2 only): a text is encoded as if a space preceded it, so a word at the start of an
    alt-text gets the same tokens as the same word inside a caption (copying it is then copying tokens).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import BartTokenizer, GPT2Tokenizer

    if kind not in ("gpt2", "bart"):
        raise ValueError(f"kind must be 'gpt2' or 'bart', got {kind!r}")
    special = BART_SPECIAL_TOKENS if kind == "bart" else GPT2_SPECIAL_TOKENS
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(special):
        raise ValueError(f"vocab_size {vocab_size} is below the {len(alphabet) + len(special)} byte and special tokens")
    backend = Tokenizer(models.BPE())
    if add_prefix_space and kind != "gpt2":
        raise ValueError("add_prefix_space is for kind='gpt2' only")
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(special),
        initial_alphabet=alphabet, show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    model = json.loads(backend.to_str())["model"]
    vocab, merges = model["vocab"], [tuple(m) for m in model["merges"]]
    if kind == "bart":
        tokenizer = BartTokenizer(vocab=vocab, merges=merges)
    else:
        eos = GPT2_SPECIAL_TOKENS[0]
        tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, bos_token=eos, eos_token=eos, unk_token=eos,
                                  pad_token="<pad>", padding_side="left", add_prefix_space=add_prefix_space)
    tokenizer.model_max_length = 128
    logger.info("trained a %s byte-level BPE with %d tokens", kind, len(tokenizer))
    if out_dir is not None:
        tokenizer.save_pretrained(out_dir)
    return tokenizer
