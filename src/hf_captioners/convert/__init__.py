"""Converters that rebuild Hugging Face artefacts from what other libraries ship, without downloads."""

from __future__ import annotations

from .clip_tokenizer import CLIP_CONTEXT_LENGTH, build_clip_tokenizer, clip_byte_symbols, open_clip_bpe_path

__all__ = ["CLIP_CONTEXT_LENGTH", "build_clip_tokenizer", "clip_byte_symbols", "open_clip_bpe_path"]
