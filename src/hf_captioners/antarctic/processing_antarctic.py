"""Processor of antarctic-captions: CLIP pixels, BART tables and captions, CLIP tokens for scoring texts.

BART's tokenizer is the primary `tokenizer` (tables in, captions out); CLIP's is saved in `clip_tokenizer/`.

Two training layouts of the caption (`decoder_layout`):
- "shift" (new models): labels = `<s> caption </s>`; BART shifts them right, so the decoder reads
  `</s> <s> caption` -- the sequence generation produces when it starts from `</s>` and forces `<s>`.
- "original" (the released model, `model.py` `compute_loss`): decoder_input_ids = `<s> caption </s>` and labels
  the same ids shifted left by one, pads -100. The decoder never sees the `</s>` that generation starts from.
Tables are cut to `encoder_max_length` tokens for training, as the original did; at inference it did not cut
them, and neither does this processor (beyond BART's position limit).
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import BatchEncoding, CLIPImageProcessor, CLIPImageProcessorPil, ProcessorMixin
from transformers.processing_utils import ProcessingKwargs, Unpack

from .image_processing_antarctic import AntarcticImageProcessor
from .image_utils import ImageInputError, load_rgb_image

__all__ = ["AntarcticProcessor", "AntarcticProcessorKwargs"]


class AntarcticProcessorKwargs(ProcessingKwargs, total=False):
    """Image-processor options pass through; tables and captions are tokenized with the processor's own lengths."""


class AntarcticProcessor(ProcessorMixin):
    def __init__(self, image_processor, tokenizer, clip_tokenizer, table_separator: str = " | ",
                 encoder_max_length: int = 128, decoder_max_length: int = 32, clip_max_length: int = 77,
                 decoder_layout: str = "shift"):
        if decoder_layout not in ("shift", "original"):
            raise ValueError(f"decoder_layout must be 'shift' or 'original', got {decoder_layout!r}")
        self.table_separator = table_separator
        self.encoder_max_length = encoder_max_length
        self.decoder_max_length = decoder_max_length
        self.clip_max_length = clip_max_length
        self.decoder_layout = decoder_layout
        if isinstance(image_processor, (CLIPImageProcessor, CLIPImageProcessorPil)) and not isinstance(
            image_processor, AntarcticImageProcessor
        ):
            # the original (OpenAI's clip.load transform) crops where torchvision does, a pixel off transformers'
            image_processor = AntarcticImageProcessor.from_dict(image_processor.to_dict())
        super().__init__(image_processor, tokenizer, clip_tokenizer)

    def linearize(self, entries: Sequence[str]) -> str:
        """`"e1 | e2 | ... | ek | "`: each entry followed by the separator, as the original wrote tables."""
        return "".join(entry + self.table_separator for entry in entries)

    def __call__(self, images=None, tables=None, text_target=None, return_tensors="pt",
                 **kwargs: Unpack[AntarcticProcessorKwargs]) -> BatchEncoding:
        """images -> pixel_values; tables (entry lists or linearized strings) -> input_ids; captions -> labels."""
        data = {}
        if images is not None:
            images_kwargs = self._merge_kwargs(AntarcticProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs,
                                               **kwargs)["images_kwargs"]
            data.update(self.preprocess_images(images, return_tensors=return_tensors, **images_kwargs))
        if tables is not None:
            texts = [t if isinstance(t, str) else self.linearize(t) for t in _as_list(tables, "tables")]
            limit = self.encoder_max_length if text_target is not None else self._position_limit()
            data.update(self.tokenizer(texts, padding=True, truncation=limit is not None, max_length=limit,
                                       return_tensors=return_tensors))
        if text_target is not None:
            captions = _as_list(text_target, "text_target")
            bad = [i for i, c in enumerate(captions) if not isinstance(c, str) or not c.strip()]
            if bad:
                raise ValueError(f"text_target: empty or non-string captions at positions {bad}")
            target = self.tokenizer(captions, padding=True, truncation=True, max_length=self.decoder_max_length,
                                    return_tensors=return_tensors)
            ids, mask = target["input_ids"], target["attention_mask"]
            if self.decoder_layout == "original":
                labels = ids.new_full(ids.shape, -100)
                labels[:, :-1] = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
                data.update(decoder_input_ids=ids, decoder_attention_mask=mask)
            else:
                labels = ids.masked_fill(mask == 0, -100)
            data["labels"] = labels
        if not data:
            raise ValueError("AntarcticProcessor: pass images=, tables= and/or text_target=")
        return BatchEncoding(data)

    def _position_limit(self) -> int | None:
        limit = getattr(self.tokenizer, "model_max_length", None)
        return limit if limit is not None and limit < 1_000_000 else None

    def preprocess_images(self, images, return_tensors="pt", **images_kwargs):
        """Every input goes through the shared sanitiser, so errors name the offending image."""
        items = images if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise ImageInputError("images: empty list")
        rgb = [load_rgb_image(item, name=f"image {i}") for i, item in enumerate(items)]
        return self.image_processor(images=rgb, **{**images_kwargs, "return_tensors": return_tensors})

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
