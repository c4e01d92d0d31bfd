"""Processor of antarctic-captions: CLIP pixels, BART tables and captions, CLIP tokens for scoring texts.

BART's tokenizer is the primary `tokenizer` (tables in, captions out); CLIP's is saved in `clip_tokenizer/`.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import BatchEncoding, CLIPImageProcessor, CLIPImageProcessorPil, ProcessorMixin

from .image_processing_antarctic import AntarcticImageProcessor
from .image_utils import ImageInputError, load_rgb_image

__all__ = ["AntarcticProcessor"]


class AntarcticProcessor(ProcessorMixin):
    def __init__(self, image_processor, tokenizer, clip_tokenizer, table_separator: str = " | ",
                 encoder_max_length: int = 128, decoder_max_length: int = 32, clip_max_length: int = 77):
        self.table_separator = table_separator
        self.encoder_max_length = encoder_max_length
        self.decoder_max_length = decoder_max_length
        self.clip_max_length = clip_max_length
        if isinstance(image_processor, (CLIPImageProcessor, CLIPImageProcessorPil)) and not isinstance(
            image_processor, AntarcticImageProcessor
        ):
            # the original (OpenAI's clip.load transform) crops where torchvision does, a pixel off transformers'
            image_processor = AntarcticImageProcessor.from_dict(image_processor.to_dict())
        super().__init__(image_processor, tokenizer, clip_tokenizer)

    def linearize(self, entries: Sequence[str]) -> str:
        """`"e1 | e2 | ... | ek | "`: each entry followed by the separator, as the original wrote tables."""
        return "".join(entry + self.table_separator for entry in entries)

    def __call__(self, images=None, tables=None, text_target=None, return_tensors="pt", **kwargs) -> BatchEncoding:
        """images -> pixel_values; tables (entry lists or linearized strings) -> input_ids; captions -> labels."""
        data = {}
        if images is not None:
            data.update(self.preprocess_images(images, return_tensors=return_tensors))
        if tables is not None:
            texts = [t if isinstance(t, str) else self.linearize(t) for t in _as_list(tables, "tables")]
            data.update(self.tokenizer(texts, padding=True, truncation=True, max_length=self.encoder_max_length,
                                       return_tensors=return_tensors))
        if text_target is not None:
            captions = _as_list(text_target, "text_target")
            bad = [i for i, c in enumerate(captions) if not isinstance(c, str) or not c.strip()]
            if bad:
                raise ValueError(f"text_target: empty or non-string captions at positions {bad}")
            labels = self.tokenizer(captions, padding=True, truncation=True, max_length=self.decoder_max_length,
                                    return_tensors=return_tensors)["input_ids"]
            labels = labels.masked_fill(labels == self.tokenizer.pad_token_id, -100)
            data["labels"] = labels
        if not data:
            raise ValueError("AntarcticProcessor: pass images=, tables= and/or text_target=")
        return BatchEncoding(data)

    def preprocess_images(self, images, return_tensors="pt"):
        """Every input goes through the shared sanitiser, so errors name the offending image."""
        items = images if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise ImageInputError("images: empty list")
        rgb = [load_rgb_image(item, name=f"image {i}") for i, item in enumerate(items)]
        return self.image_processor(images=rgb, return_tensors=return_tensors)

    def clip_tokenize(self, texts: Sequence[str], max_length: int | None = None, return_tensors="pt"):
        return self.clip_tokenizer(list(texts), padding=True, truncation=True,
                                   max_length=max_length or self.clip_max_length, return_tensors=return_tensors)

    def batch_decode(self, *args, **kwargs):
        kwargs.setdefault("skip_special_tokens", True)
        return [text.strip() for text in self.tokenizer.batch_decode(*args, **kwargs)]

    def decode(self, *args, **kwargs):
        kwargs.setdefault("skip_special_tokens", True)
        return self.tokenizer.decode(*args, **kwargs).strip()


def _as_list(value, name: str) -> list:
    if isinstance(value, str):
        return [value]
    value = list(value)
    if not value:
        raise ValueError(f"{name}: empty list")
    return value


AntarcticProcessor.register_for_auto_class()
