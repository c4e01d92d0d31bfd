"""Caption metrics. Importing this package is cheap: `evaluate`, torch and CLIP load only when used.

`cider_d` reproduces pycocoevalcap's CIDEr-D exactly (tokenization included) without Java; the same code is
available as an `evaluate` module in `metrics/cider/`.
"""

from __future__ import annotations

import importlib

__all__ = [
    "PTBTokenizer", "bleu_rouge", "caption_length_stats", "cider_d", "clip_scores", "ptb_tokenize",
    "alt_text_retention", "salient_terms",
]

_LAZY = {
    "PTBTokenizer": "hf_captioners.metrics.cider.ptb_tokenizer",
    "ptb_tokenize": "hf_captioners.metrics.cider.ptb_tokenizer",
    "bleu_rouge": "hf_captioners.metrics.text",
    "clip_scores": "hf_captioners.metrics.clip_score",
    "alt_text_retention": "hf_captioners.metrics.retention",
    "salient_terms": "hf_captioners.metrics.retention",
    "caption_length_stats": "hf_captioners.metrics.retention",
}


def cider_d(predictions, references, tokenize: bool = True, n: int = 4, sigma: float = 6.0) -> dict:
    """CIDEr-D of `predictions` (one str per image) against `references` (a non-empty list of str per image).

    Returns {"cider_d": corpus score, "scores": per-example list}. With tokenize=False the strings are taken
    as already tokenized (whitespace-separated), as pycocoevalcap's Cider.compute_score takes them.
    """
    from .cider.cider_d import CiderD, validate_inputs
    from .cider.ptb_tokenizer import ptb_word_ids

    predictions, references = validate_inputs(predictions, references)
    score, scores = CiderD(n=n, sigma=sigma).compute_captions(predictions, references, ptb_word_ids if tokenize else None)
    return {"cider_d": score, "scores": scores.tolist()}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hf_captioners.metrics' has no attribute {name!r}")
