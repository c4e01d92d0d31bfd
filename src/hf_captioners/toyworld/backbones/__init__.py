"""Toy backbones: a tiny CLIP, causal LM and BART pretrained on the toy world, standing in for the
pretrained frozen parts that cannot be downloaded here. Names load on first use (torch is heavy)."""

from __future__ import annotations

import importlib

_LAZY = {
    "BACKBONES": ".pretrain",
    "pretrain_backbones": ".pretrain",
    "pretrain_clip": ".clip",
    "tiny_clip_config": ".clip",
    "evaluate_clip": ".clip",
    "encode_clip_images": ".clip",
    "pretrain_causal_lm": ".causal_lm",
    "tiny_causal_lm_config": ".causal_lm",
    "causal_lm_perplexity": ".causal_lm",
    "pretrain_bart": ".bart",
    "tiny_bart_config": ".bart",
    "text_infilling": ".bart",
    "bart_reconstruction_loss": ".bart",
    "train_bpe_tokenizer": ".tokenizers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
