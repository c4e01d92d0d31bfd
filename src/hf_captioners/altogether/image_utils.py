"""Turning whatever users pass as an image into an 8-bit RGB PIL image, or a clear error.

Shared by both captioners' processors (antarctic/ carries a marked copy of this file), because web-scale
re-captioning meets every PIL mode: palette and RGBA logos, CMYK magazine scans, 16-bit PNGs, 1x1
tracking pixels and decompression bombs.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

__all__ = ["DEFAULT_MAX_PIXELS", "ImageInputError", "load_rgb_image"]

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb threshold


class ImageInputError(ValueError):
    """An input that cannot be turned into an image; the message names the input and the problem."""


def _describe(source, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return type(source).__name__


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Transparent pixels become white, as a browser shows a logo, not black as a bare convert() does."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    array = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        array = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
    else:
        array = array / 257.0 if array.max(initial=0) > 255 else array
    gray = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
    return gray.convert("RGB")


def load_rgb_image(source, name: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Accept a PIL image, a path, raw bytes, or an HxW / HxWxC uint8 array; return RGB.

    Raises `ImageInputError` naming the input for unreadable data, empty images, or images over
    `max_pixels` (checked from the header, before decoding, so bombs cost nothing).
    """
    label = _describe(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageInputError(f"{label}: empty image data (0 bytes)")
        source = io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike, io.IOBase)):
        try:
            image = Image.open(source)
        except FileNotFoundError as error:
            raise ImageInputError(f"{label}: no such file") from error
        except Exception as error:  # PIL raises many types for undecodable data
            raise ImageInputError(f"{label}: not a readable image ({error})") from error
    elif isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.size == 0:
            raise ImageInputError(f"{label}: expected an HxW or HxWxC array, got shape {source.shape}")
        array = source
        if array.dtype != np.uint8:
            if np.issubdtype(array.dtype, np.floating) and array.size and np.nanmax(array) <= 1.0:
                array = array * 255.0
            array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        image = Image.fromarray(array)
    else:
        raise ImageInputError(f"{label}: unsupported image type {type(source).__name__}")

    width, height = image.size
    if width == 0 or height == 0:
        raise ImageInputError(f"{label}: image has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageInputError(f"{label}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}")
    try:
        image.load()
    except Exception as error:
        raise ImageInputError(f"{label}: truncated or corrupt image data ({error})") from error

    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_bit_depth_to_rgb(image)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        return _flatten_alpha(image)
    return image.convert("RGB")
