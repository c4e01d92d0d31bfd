"""Converters that rebuild Hugging Face artefacts from what other libraries ship, without downloads."""

from __future__ import annotations

from hf_captioners.convert.clip_tokenizer import (
    CLIP_CONTEXT_LENGTH,
    build_clip_tokenizer,
    clip_byte_symbols,
    open_clip_bpe_path,
)

# checkpoint converters, imported on first use (they pull in torch and transformers)
_CONVERTERS = {
    "convert_open_clip": "open_clip_to_hf",
    "convert_clipcap": "clipcap",
    "convert_altogether": "altogether_original",
    "convert_antarctic": "antarctic_original",
    "load_checkpoint": "checkpoints",
}

__all__ = ["CLIP_CONTEXT_LENGTH", "build_clip_tokenizer", "clip_byte_symbols", "open_clip_bpe_path", *_CONVERTERS]


def __getattr__(name: str):
    if name in _CONVERTERS:
        import importlib

        return getattr(importlib.import_module(f".{_CONVERTERS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
