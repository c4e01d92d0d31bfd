"""A tiny BART pretrained as a denoising autoencoder (text infilling) on toy captions.

antarctic-captions keeps BART frozen except for LayerNorms, so BART must already know how to write
captions AND copy words from its input before the captioner trains: LayerNorm tuning cannot add copying
afterwards (a BART that had not learned it gave an antarctic model that ignored its tables). Text
infilling (BART paper, Lewis et al. 2020) teaches both, but copying comes late and at a seed-dependent
step: the loss sits on a language-model plateau (~1.0) until cross-attention starts copying (~0.3). On
the toy world's short COCO-style captions that happened after 200-300 steps for seeds 0 and 1; with the
long dense captions added, after ~450 steps for seed 0 and not within 1,000 for seed 1, at twice the cost
a step. Hence short captions only, 600 default steps, and `table_copy_rate` in the metrics.
Generation settings mirror bart-large: the decoder starts with </s>, then <s> is forced.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re

import numpy as np
import torch

from hf_captioners.toyworld.backbones.common import RECIPES, PretrainRun, split_texts

logger = logging.getLogger(__name__)

__all__ = [
    "BART_TEXT_FIELDS", "bart_reconstruction_loss", "pretrain_bart", "table_copy_rate", "text_infilling", "tiny_bart_config",
]

BART_TEXT_FIELDS = ("captions",)


def text_infilling(
    ids: list[int],
    mask_id: int,
    rng: np.random.Generator,
    mask_ratio: float = 0.3,
    poisson_lambda: float = 3.0,
    keep_ends: bool = True,
) -> list[int]:
    """BART's text infilling: spans with Poisson(lambda) lengths cover ~`mask_ratio` of the tokens and each
    span becomes ONE <mask>; a zero-length span inserts a <mask>. The first/last tokens (<s>, </s>) stay.

    Spans are drawn until enough tokens are covered; overlapping or touching spans merge into one mask.
    """
    body_start, body_end = (1, len(ids) - 1) if keep_ends and len(ids) >= 2 else (0, len(ids))
    n = body_end - body_start
    budget = int(round(n * mask_ratio))
    if n == 0 or budget == 0:
        return list(ids)
    removed = np.zeros(n, dtype=bool)
    inserts: set[int] = set()
    for _ in range(4 * n + 16):
        if removed.sum() >= budget:
            break
        length = min(int(rng.poisson(poisson_lambda)), n)
        if length == 0:
            inserts.add(int(rng.integers(0, n + 1)))
            continue
        start = int(rng.integers(0, n - length + 1))
        take = min(length, budget - int(removed.sum()) + int(removed[start : start + length].sum()))
        removed[start : start + take] = True
    body = ids[body_start:body_end]
    out = list(ids[:body_start])
    for i in range(n + 1):
        if i in inserts and (i == 0 or not removed[i - 1]) and (i == n or not removed[i]):
            out.append(mask_id)
        if i == n:
            break
        if not removed[i]:
            out.append(body[i])
        elif i == 0 or not removed[i - 1]:
            out.append(mask_id)
    return out + list(ids[body_end:])


def tiny_bart_config(vocab_size: int, d_model: int = 128, layers: int = 2, positions: int = 128, tokenizer=None):
    """bart-large's layout (post-LN, learned positions with offset 2, layernorm_embedding) at toy size."""
    from transformers import BartConfig

    bos, pad, eos = (0, 1, 2) if tokenizer is None else (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id)
    return BartConfig(
        vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=d_model * 4, decoder_ffn_dim=d_model * 4,
        max_position_embeddings=positions, dropout=0.1, attention_dropout=0.0, activation_dropout=0.0,
        bos_token_id=bos, pad_token_id=pad, eos_token_id=eos, decoder_start_token_id=eos, forced_bos_token_id=bos,
        forced_eos_token_id=eos, scale_embedding=False,
    )


def _generation_config(tokenizer):
    from transformers import GenerationConfig

    eos = tokenizer.eos_token_id
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=eos, forced_bos_token_id=tokenizer.bos_token_id, forced_eos_token_id=eos,
        max_length=64,
    )


def _pad(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def _denoising_batch(rows: list[list[int]], tokenizer, rng: np.random.Generator, **noise) -> dict:
    pad = tokenizer.pad_token_id
    noisy = _pad([text_infilling(r, tokenizer.mask_token_id, rng, **noise) for r in rows], pad)
    labels = _pad(rows, pad)
    return {"input_ids": noisy, "attention_mask": (noisy != pad).long(), "labels": labels.masked_fill(labels == pad, -100)}


def _batches(rows: list[list[int]], tokenizer, batch_size: int, seed: int, **noise):
    order_rng, noise_rng = random.Random(seed), np.random.default_rng(seed)
    order = list(range(len(rows)))
    while True:
        order_rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield _denoising_batch([rows[i] for i in order[start : start + batch_size]], tokenizer, noise_rng, **noise)


@torch.no_grad()
def bart_reconstruction_loss(model, tokenizer, texts: list[str], seed: int = 0, batch_size: int = 128, **noise) -> float:
    """Mean token cross-entropy of reconstructing `texts` from their infilled versions (fixed noise seed)."""
    model.eval()
    rng = np.random.default_rng(seed)
    rows = tokenizer(texts, truncation=True, max_length=model.config.max_position_embeddings)["input_ids"]
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = _denoising_batch(rows[start : start + batch_size], tokenizer, rng, **noise)
        logits = model(**batch).logits
        total += torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), batch["labels"].reshape(-1), ignore_index=-100, reduction="sum"
        ).item()
        count += (batch["labels"] != -100).sum().item()
    return total / max(count, 1)


@torch.no_grad()
def table_copy_rate(model, tokenizer, texts: list[str], seed: int = 0, limit: int = 200, batch_size: int = 64) -> dict:
    """Does BART read its input? Each caption that names a toy colour gets that colour swapped for another
    one, is cut into shuffled 1-2 word fragments joined by " | " (the shape of an antarctic table), and is
    reconstructed greedily; the rate is how often the output names the swapped-in colour, which only the
    input has: a decoder that ignores its input names it about one time in ten."""
    from hf_captioners.toyworld.world import COLORS

    rng = random.Random(seed)
    tables, wanted = [], []
    for text in texts:
        found = [c for c in COLORS if re.search(rf"\b{c}\b", text.lower())]
        if not found:
            continue
        new = rng.choice([c for c in COLORS if c != found[0]])
        words = re.findall(r"\w+|[^\w\s]", re.sub(rf"\b{found[0]}\b", new, text.lower()))
        fragments, start = [], 0
        while start < len(words):
            size = rng.randint(1, 2)
            fragments.append(" ".join(words[start : start + size]))
            start += size
        rng.shuffle(fragments)
        tables.append(" | ".join(fragments) + " | ")
        wanted.append(new)
        if len(tables) == limit:
            break
    model.eval()
    hits = []
    for start in range(0, len(tables), batch_size):
        batch = tokenizer(tables[start : start + batch_size], return_tensors="pt", padding=True, truncation=True,
                          max_length=model.config.max_position_embeddings)
        generated = model.generate(**batch, num_beams=1, do_sample=False)
        for colour, text in zip(wanted[start:], tokenizer.batch_decode(generated, skip_special_tokens=True)):
            hits.append(re.search(rf"\b{colour}\b", text.lower()) is not None)
    return {"table_copy_rate": round(sum(hits) / len(hits), 4) if hits else None, "table_copy_probes": len(hits)}


def pretrain_bart(
    toyworld_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    config=None,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float = 2e-3,
    vocab_size: int = 2000,
    seed: int = 0,
    fast: bool = False,
    mask_ratio: float = 0.3,
    poisson_lambda: float = 3.0,
    limit: int | None = None,
    eval_limit: int | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Train a BART-style byte-level BPE and a tiny BART denoiser on the backbone split's five short captions
    per image; report eval reconstruction loss/perplexity; save to `out_dir` (BartForConditionalGeneration +
    AutoTokenizer load it). `config`: a `BartConfig` or a dict of `tiny_bart_config` arguments."""
    from transformers import BartForConditionalGeneration

    from hf_captioners.toyworld.backbones.tokenizers import train_bpe_tokenizer

    noise = {"mask_ratio": mask_ratio, "poisson_lambda": poisson_lambda}
    with PretrainRun(RECIPES["bart"], out_dir, seed, fast, steps, batch_size, limit, eval_limit, threads, lr) as run:
        texts = split_texts(toyworld_root, "backbone", BART_TEXT_FIELDS, run.limit)
        tokenizer = train_bpe_tokenizer(texts, vocab_size, kind="bart")
        if config is None or isinstance(config, dict):
            config = tiny_bart_config(len(tokenizer), tokenizer=tokenizer, **(config or {}))
        elif config.vocab_size < len(tokenizer):
            raise ValueError(f"config.vocab_size {config.vocab_size} < the trained tokenizer's {len(tokenizer)} tokens")
        model = BartForConditionalGeneration(config)
        model.generation_config = _generation_config(tokenizer)
        rows = tokenizer(texts, truncation=True, max_length=config.max_position_embeddings)["input_ids"]
        losses = run.train(model, _batches(rows, tokenizer, min(run.batch_size, len(rows)), seed, **noise), progress)
        eval_texts = split_texts(toyworld_root, "eval", BART_TEXT_FIELDS, run.eval_limit)
        eval_loss = bart_reconstruction_loss(model, tokenizer, eval_texts, seed=seed, **noise)
        metrics = {"eval_reconstruction_loss": round(eval_loss, 4), "eval_perplexity": round(math.exp(eval_loss), 3),
                   **table_copy_rate(model, tokenizer, eval_texts, seed=seed)}
        sample = eval_texts[0]
        noisy = _denoising_batch([tokenizer(sample)["input_ids"]], tokenizer, np.random.default_rng(seed), **noise)
        generated = model.generate(input_ids=noisy["input_ids"], attention_mask=noisy["attention_mask"], num_beams=1)
        metrics["example"] = {
            "noisy": tokenizer.decode(noisy["input_ids"][0], skip_special_tokens=False),
            "reconstructed": tokenizer.decode(generated[0], skip_special_tokens=True),
            "original": sample,
        }
        model.save_pretrained(run.out)
        tokenizer.save_pretrained(run.out)
    return run.finish(model, losses, metrics, train_texts=len(texts), eval_texts=len(eval_texts),
                      vocab_size=len(tokenizer), **noise)
