"""CLIP's eval image transform exactly as the originals ran it (torchvision `Resize` + `CenterCrop`).

transformers' centre crop puts the window at `margin // 2`; torchvision's `CenterCrop` (used by open_clip,
OpenAI's `clip.load` and MetaCLIP's data loaders) at `int(round(margin / 2))`, with Python's round-half-to-
even. The two differ by one pixel whenever the margin is 3 modulo 4 (e.g. 227 -> 224), which moves every CLIP
feature. This processor keeps transformers' resize, rescale and normalisation (the PIL backend, bit-exact with
torchvision's) and crops where torchvision does.
"""

from __future__ import annotations

import numpy as np
from transformers import CLIPImageProcessorPil
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

__all__ = ["AltogetherImageProcessor"]


class AltogetherImageProcessor(CLIPImageProcessorPil):
    """`CLIPImageProcessorPil` whose centre crop (and padding of too-small images) follows torchvision."""

    @classmethod
    def clip_eval(cls, image_size: int = 224, image_mean=None, image_std=None) -> AltogetherImageProcessor:
        """Resize the shortest edge (bicubic) + centre crop + CLIP normalisation (OpenAI's mean/std by default)."""
        return cls(  # the class defaults are CLIP's: bicubic, rescale, normalise, convert to RGB
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
            image_mean=list(image_mean or OPENAI_CLIP_MEAN),
            image_std=list(image_std or OPENAI_CLIP_STD),
        )

    def center_crop(self, image: np.ndarray, size, **kwargs) -> np.ndarray:
        crop_height, crop_width = size.height, size.width
        if crop_height is None or crop_width is None:
            raise ValueError(f"crop_size needs 'height' and 'width', got {size}")
        height, width = image.shape[-2:]
        if crop_height > height or crop_width > width:
            pad_top, pad_left = max(crop_height - height, 0) // 2, max(crop_width - width, 0) // 2
            pad_bottom, pad_right = max(crop_height - height + 1, 0) // 2, max(crop_width - width + 1, 0) // 2
            widths = [(0, 0)] * (image.ndim - 2) + [(pad_top, pad_bottom), (pad_left, pad_right)]
            image = np.pad(image, widths, constant_values=0)
            height, width = image.shape[-2:]
        top = int(round((height - crop_height) / 2.0))
        left = int(round((width - crop_width) / 2.0))
        return image[..., top : top + crop_height, left : left + crop_width]


AltogetherImageProcessor.register_for_auto_class("AutoImageProcessor")
