"""Processor for Altogether / ClipCap: CLIP image preprocessing + the original's fixed token layout.

Every example is `[<image> x prefix_length][alt-text, left-padded to prompt_length][caption + eos]`.
The prompt's pads are attended (attention mask 1, as in the original, so positions run on); only the
right padding of captions is masked. Because all prompts share one length, batched generation needs no
left padding and equals per-example generation.

`max_length` counts text only, as the original's `max_seq_len` (320 = 128 prompt + 192 caption tokens;
MetaCLIP `configs/altogether.py` lines 31-32): the prefix comes on top. A caption longer than its budget is
cut to the budget without an end-of-text token, so the model is not taught to stop mid-sentence. (The
original cuts it too, and its `attention_mask[:-padding_len]` with `padding_len == 0` then masks the whole
example: captions that fill the budget exactly or overflow it silently train nothing there.)
"""

from __future__ import annotations

import html
import logging
import os
import re

import numpy as np
import torch
from PIL import Image
from transformers import AutoTokenizer, CLIPImageProcessor, CLIPImageProcessorPil, ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessingKwargs, Unpack

from .image_processing_altogether import AltogetherImageProcessor
from .image_utils import load_rgb_image

logger = logging.getLogger(__name__)

__all__ = ["AltogetherProcessor", "AltogetherProcessorKwargs", "clean_text", "join_alt_texts"]

IGNORE_INDEX = -100
_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]{0,500}>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACE = re.compile(r"\s+")


def clean_text(text, name: str = "text", strip_html: bool = True) -> str:
    """Web text -> clean str: bytes decoded as UTF-8 (bad bytes become U+FFFD), lone surrogates replaced,
    HTML entities unescaped and tags removed (alt-texts are scraped HTML), whitespace collapsed."""
    if text is None:
        return ""
    if isinstance(text, (bytes, bytearray)):
        decoded = bytes(text).decode("utf-8", errors="replace")
        if "\ufffd" in decoded:
            logger.warning("%s: invalid UTF-8 bytes replaced by U+FFFD", name)
        text = decoded
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected a string, bytes or None, got {type(text).__name__}")
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    if strip_html:
        text = _TAG.sub(" ", html.unescape(text))
    return _SPACE.sub(" ", _CONTROL.sub(" ", text)).strip()


def join_alt_texts(alt_text, name: str = "alt_text", strip_html: bool = True, raw: bool = False) -> str:
    """One image's alt-text(s) -> the prompt string: deduplicated in order, joined by "; " (the original's
    inference format). None / "" / [] mean no alt-text.

    `raw=True` is the original's `infer.py` (lines 123-127): the texts exactly as given, no HTML handling or
    whitespace clean-up, only de-duplicated (in order here; the original's `set()` order is arbitrary).
    """
    if alt_text is None or isinstance(alt_text, (str, bytes, bytearray)):
        return _raw_text(alt_text, name) if raw else clean_text(alt_text, name, strip_html)
    if not isinstance(alt_text, (list, tuple)):
        raise TypeError(f"{name}: expected a string, a list of strings or None, got {type(alt_text).__name__}")
    if raw:
        return "; ".join(dict.fromkeys(_raw_text(t, f"{name}[{i}]") for i, t in enumerate(alt_text)))
    texts = [clean_text(t, f"{name}[{i}]", strip_html) for i, t in enumerate(alt_text)]
    return "; ".join(dict.fromkeys(t for t in texts if t))


def _raw_text(text, name: str) -> str:
    if text is None:
        return ""
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected a string, bytes or None, got {type(text).__name__}")
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _is_single_image(images) -> bool:
    if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike, Image.Image)):
        return True
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return images.ndim <= 3
    return not _is_sequence(images)


def _is_sequence(value) -> bool:
    """A batch container: list, tuple, or anything list-like (e.g. a `datasets` column)."""
    return not isinstance(value, (str, bytes, bytearray, dict)) and hasattr(value, "__len__") and hasattr(value, "__iter__")


class AltogetherProcessorKwargs(ProcessingKwargs, total=False):
    """Image-processor options pass through; text options (padding, truncation, max_length, ...) have no effect:
    the sequence layout is fixed by the processor's own lengths."""


class AltogetherProcessor(ProcessorMixin):
    """CLIP image processor (PIL backend, bit-exact with open_clip's eval transform) + LM tokenizer.

    `raw_text=True` feeds alt-texts and captions as given, as the original did (converted checkpoints);
    otherwise they are cleaned (`clean_text`).

    `processor(images, alt_text=..., captions=..., return_tensors="pt")` -> input_ids, attention_mask,
    pixel_values (+ labels with captions). `text=` is an alias of `alt_text` (the image-text-to-text pipeline
    passes the alt-text as text). Without images it builds the text side only, for cached `image_embeds`.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        prefix_length: int = 40,
        prompt_length: int = 128,
        max_length: int = 320,
        image_token: str = "<image>",
        strip_html: bool = True,
        raw_text: bool = False,
        append_eos: bool = True,
        **kwargs,
    ):
        self.prefix_length = prefix_length
        self.prompt_length = prompt_length
        self.max_length = max_length
        self.image_token = image_token
        self.strip_html = strip_html
        self.raw_text = raw_text
        self.append_eos = append_eos
        if isinstance(image_processor, (CLIPImageProcessor, CLIPImageProcessorPil)) and not isinstance(
            image_processor, AltogetherImageProcessor
        ):
            # the originals crop where torchvision does; transformers' own CLIP processors are a pixel off
            image_processor = AltogetherImageProcessor.from_dict(image_processor.to_dict())
        super().__init__(image_processor, tokenizer, **kwargs)
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {image_token!r} token: build with AltogetherProcessor.from_backbones")
        if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer needs a pad and an eos token")
        if max_length <= prompt_length:
            raise ValueError(f"max_length={max_length} (text tokens) leaves no room for a caption after a "
                             f"{prompt_length}-token prompt")  # fmt: skip

    @property
    def caption_length(self) -> int:
        """Caption tokens (end-of-text included) a training example holds; also generation's `max_new_tokens`."""
        return self.max_length - self.prompt_length

    @staticmethod
    def default_image_processor(image_size: int = 224) -> AltogetherImageProcessor:
        """Resize shortest edge (bicubic) + centre crop + OpenAI CLIP normalisation: open_clip's eval transform."""
        return AltogetherImageProcessor.clip_eval(image_size)

    @classmethod
    def from_backbones(
        cls, image_processor, tokenizer, prefix_length: int = 40, prompt_length: int = 128, **kwargs
    ) -> AltogetherProcessor:
        """Add `<image>` (and a `<pad>` if the tokenizer has none) to `tokenizer` and wrap both.

        `image_processor`: an image processor, its name/path, an int (image size for `default_image_processor`)
        or None (224). `tokenizer`: a tokenizer or its name/path (e.g. "facebook/opt-1.3b").
        Then build the model with `AltogetherForConditionalGeneration.from_backbones(..., processor=this)`,
        which grows the LM's embeddings to the new vocabulary.
        """
        if image_processor is None or isinstance(image_processor, int):
            image_processor = cls.default_image_processor(image_processor or 224)
        elif isinstance(image_processor, (str, os.PathLike)):
            image_processor = AltogetherImageProcessor.from_pretrained(image_processor)
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer, padding_side="left")
        image_token = kwargs.get("image_token", "<image>")
        tokenizer.add_tokens([image_token], special_tokens=True)
        if tokenizer.pad_token is None:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
        tokenizer.padding_side = "left"
        tokenizer.init_kwargs["padding_side"] = "left"
        return cls(image_processor, tokenizer, prefix_length=prefix_length, prompt_length=prompt_length, **kwargs)

    # ---- encoding ----
    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        # a literal "<image>" in user text must never become a placeholder
        return [[t for t in seq if t != self.image_token_id] for seq in ids]

    def build_prompt_ids(self, alt_texts: list[str]) -> list[list[int]]:
        """`prefix_length` placeholders + the alt-text's first `prompt_length` tokens, left-padded."""
        pad = self.tokenizer.pad_token_id
        rows = []
        for ids in self._encode(alt_texts) if self.prompt_length else [[] for _ in alt_texts]:
            ids = ids[: self.prompt_length]
            rows.append([self.image_token_id] * self.prefix_length + [pad] * (self.prompt_length - len(ids)) + ids)
        return rows

    def __call__(
        self,
        images=None,
        text=None,
        alt_text=None,
        captions=None,
        return_tensors: str | None = "pt",
        **kwargs: Unpack[AltogetherProcessorKwargs],
    ) -> BatchFeature:
        if text is not None and alt_text is not None:
            raise ValueError("pass the alt-text as `alt_text` or `text`, not both")
        alt_text = text if alt_text is None else alt_text
        images_kwargs = self._merge_kwargs(AltogetherProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs,
                                           **kwargs)["images_kwargs"]

        single = images is not None and _is_single_image(images)
        if images is not None:
            images = [images] if single else list(images)
            batch = len(images)
        elif captions is not None and _is_sequence(captions):
            batch = len(captions)
        elif _is_sequence(alt_text):
            batch = len(alt_text)
        elif alt_text is not None or captions is not None:
            batch = 1
            single = True
        else:
            raise ValueError("pass images, alt_text or captions")

        if single:
            alt_list = [alt_text]
        elif alt_text is None:
            alt_list = [None] * batch
        elif _is_sequence(alt_text) and len(alt_text) == batch:
            alt_list = list(alt_text)
        else:
            raise ValueError(f"alt_text must be a list with one entry per image ({batch}), got {type(alt_text).__name__}")
        if captions is not None:
            captions = list(captions) if _is_sequence(captions) else [captions]
            if len(captions) != batch:
                raise ValueError(f"got {len(captions)} captions for {batch} examples")

        prompts = [join_alt_texts(a, f"alt_text[{i}]", self.strip_html, self.raw_text) for i, a in enumerate(alt_list)]
        input_ids = self.build_prompt_ids(prompts)
        attention_mask = [[1] * len(row) for row in input_ids]
        data = {}
        if captions is not None:
            labels = [[IGNORE_INDEX] * len(row) for row in input_ids]
            budget = self.caption_length
            texts = [_raw_text(c, f"captions[{i}]") if self.raw_text else clean_text(c, f"captions[{i}]", self.strip_html)
                     for i, c in enumerate(captions)]  # fmt: skip
            eos = [self.tokenizer.eos_token_id] if self.append_eos else []
            targets = [ids + eos if len(ids) + len(eos) <= budget else ids[:budget] for ids in self._encode(texts)]
            if any(not t for t in targets):
                raise ValueError(f"captions: empty captions at positions {[i for i, t in enumerate(targets) if not t]}")
            longest = max(len(t) for t in targets)
            pad = self.tokenizer.pad_token_id
            for row, mask, label, target in zip(input_ids, attention_mask, labels, targets):
                fill = longest - len(target)
                row += target + [pad] * fill
                mask += [1] * len(target) + [0] * fill
                label += target + [IGNORE_INDEX] * fill
            data["labels"] = labels
        data["input_ids"] = input_ids
        data["attention_mask"] = attention_mask

        if images is not None:
            rgb = [load_rgb_image(image, name=f"images[{i}]") for i, image in enumerate(images)]
            pixel_values = self.image_processor(rgb, **{**images_kwargs, "return_tensors": "pt"})["pixel_values"]
            data["pixel_values"] = pixel_values
        return BatchFeature(data, tensor_type=return_tensors)

    # ---- decoding ----
    def _strip_prompt(self, sequence) -> list[int]:
        ids = sequence.tolist() if hasattr(sequence, "tolist") else list(sequence)
        start = self.prefix_length + self.prompt_length
        if len(ids) >= self.prefix_length and all(t == self.image_token_id for t in ids[: self.prefix_length]):
            return ids[start:]
        return ids

    def batch_decode(self, sequences, skip_special_tokens: bool = True, **kwargs) -> list[str]:
        """Decode `generate` output (full sequences or new tokens only) to captions, prompt removed."""
        if hasattr(sequences, "ndim") and sequences.ndim == 1:
            sequences = sequences[None]
        texts = self.tokenizer.batch_decode(
            [self._strip_prompt(s) for s in sequences], skip_special_tokens=skip_special_tokens, **kwargs
        )
        # captions are one line each (the original's `llm_decode(remove_new_line=True)`)
        return [t.replace("\n", " ").strip() for t in texts]

    def decode(self, sequence, skip_special_tokens: bool = True, **kwargs) -> str:
        return self.batch_decode([sequence], skip_special_tokens=skip_special_tokens, **kwargs)[0]

    def post_process_image_text_to_text(self, generated_outputs, skip_special_tokens: bool = True, **kwargs):
        return self.batch_decode(generated_outputs, skip_special_tokens=skip_special_tokens, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]


AltogetherProcessor.register_for_auto_class()
