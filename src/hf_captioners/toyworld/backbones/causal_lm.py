"""A tiny GPT-2 pretrained on toy text: the decoder Altogether fine-tunes and the story writer prompts.

It reads what the captioner will read and write: web-like alt-texts and dense captions, names included
(names are text, and copying them from the alt-text is Altogether's point).
"""

from __future__ import annotations

import logging
import math
import os
import random

import torch

from hf_captioners.toyworld.backbones.common import RECIPES, PretrainRun, split_texts

logger = logging.getLogger(__name__)

__all__ = ["LM_TEXT_FIELDS", "causal_lm_perplexity", "pretrain_causal_lm", "tiny_causal_lm_config"]

# Web pages put an image's alt-text next to text that restates it; "alt_then_caption" documents give the toy LM
# that pairing. (At this size, 1,500 steps of it still do not make the LM copy unseen names: 2% of eval names.)
LM_TEXT_FIELDS = ("alt_texts", "caption", "alt_then_caption")


def tiny_causal_lm_config(vocab_size: int, hidden: int = 128, layers: int = 2, positions: int = 128, tokenizer=None):
    from transformers import GPT2Config

    eos = tokenizer.eos_token_id if tokenizer is not None else 0
    pad = tokenizer.pad_token_id if tokenizer is not None else 1
    return GPT2Config(
        vocab_size=vocab_size, n_positions=positions, n_embd=hidden, n_layer=layers, n_head=4,
        n_inner=hidden * 4, bos_token_id=eos, eos_token_id=eos, pad_token_id=pad,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )


def _encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """`<eos> text <eos>`: the leading eos lets generation start from nothing, the trailing one ends a text."""
    eos = tokenizer.eos_token_id
    ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length - 2)["input_ids"]
    return [[eos, *row, eos] for row in ids]


def _collate(rows: list[list[int]], pad_id: int) -> dict:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": input_ids.masked_fill(attention == 0, -100)}


def _batches(rows: list[list[int]], batch_size: int, pad_id: int, seed: int):
    rng = random.Random(seed)
    order = list(range(len(rows)))
    while True:
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield _collate([rows[i] for i in order[start : start + batch_size]], pad_id)


@torch.no_grad()
def causal_lm_perplexity(model, tokenizer, texts: list[str], batch_size: int = 128, max_length: int = 128) -> float:
    """Per-token perplexity of `<eos> text <eos>` (every predicted token counts, the closing eos too)."""
    model.eval()
    rows = _encode(tokenizer, texts, max_length)
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = _collate(rows[start : start + batch_size], tokenizer.pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += loss.item()
        count += (labels != -100).sum().item()
    return math.exp(total / max(count, 1))


def pretrain_causal_lm(
    toyworld_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    config=None,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float = 2e-3,
    vocab_size: int = 2000,
    seed: int = 0,
    fast: bool = False,
    splits: tuple[str, ...] = ("backbone", "train"),
    limit: int | None = None,
    eval_limit: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    add_prefix_space: bool = False,
) -> dict:
    """Train a byte-level BPE and a tiny GPT-2 on alt-texts + dense captions of `splits`; report eval
    perplexity; save both to `out_dir` (AutoModelForCausalLM + AutoTokenizer load them).

    `add_prefix_space`: the tokenizer's (see `train_bpe_tokenizer`).

    `config`: a causal-LM config (vocab at least the tokenizer's) or a dict of `tiny_causal_lm_config` arguments.
    """
    from transformers import AutoModelForCausalLM, GenerationConfig

    from hf_captioners.toyworld.backbones.tokenizers import train_bpe_tokenizer

    with PretrainRun(RECIPES["lm"], out_dir, seed, fast, steps, batch_size, limit, eval_limit, threads, lr) as run:
        texts = [t for split in splits for t in _split_texts_if_present(toyworld_root, split, run.limit)]
        if not texts:
            raise ValueError(f"no toy-world text for the causal LM in splits {splits} under {toyworld_root}")
        tokenizer = train_bpe_tokenizer(texts, vocab_size, kind="gpt2", add_prefix_space=add_prefix_space)
        if config is None or isinstance(config, dict):
            config = tiny_causal_lm_config(len(tokenizer), tokenizer=tokenizer, **(config or {}))
        elif config.vocab_size < len(tokenizer):
            raise ValueError(f"config.vocab_size {config.vocab_size} < the trained tokenizer's {len(tokenizer)} tokens")
        model = AutoModelForCausalLM.from_config(config)
        rows = _encode(tokenizer, texts, config.n_positions if hasattr(config, "n_positions") else 128)
        losses = run.train(model, _batches(rows, min(run.batch_size, len(rows)), tokenizer.pad_token_id, seed), progress)
        eval_texts = split_texts(toyworld_root, "eval", LM_TEXT_FIELDS, run.eval_limit)
        train_texts = random.Random(seed).sample(texts, min(len(texts), len(eval_texts)))
        metrics = {
            "eval_perplexity": round(causal_lm_perplexity(model, tokenizer, eval_texts), 3),
            "train_perplexity": round(causal_lm_perplexity(model, tokenizer, train_texts), 3),
            "eval_caption_perplexity": round(
                causal_lm_perplexity(model, tokenizer, split_texts(toyworld_root, "eval", ("caption",), run.eval_limit)), 3
            ),
        }
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
        )
        model.save_pretrained(run.out)
        tokenizer.save_pretrained(run.out)
    return run.finish(model, losses, metrics, train_texts=len(texts), add_prefix_space=add_prefix_space,
                      eval_texts=len(eval_texts), vocab_size=len(tokenizer))


def _split_texts_if_present(root, split: str, limit: int | None) -> list[str]:
    """The LM may read the captioner's train split too; a toy world without it is fine."""
    try:
        return split_texts(root, split, LM_TEXT_FIELDS, limit)
    except FileNotFoundError:
        logger.warning("causal lm: no %r split under %s, skipped", split, root)
        return []
