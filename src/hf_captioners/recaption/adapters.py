"""Model adapters for the re-captioning engine: load any saved captioner folder and split its work into
worker-side preprocessing (processor only, picklable) and main-process batched generation."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch

from hf_captioners.registry import model_pipeline, spec_for

logger = logging.getLogger(__name__)

__all__ = ["AltogetherShardCaptioner", "AntarcticShardCaptioner", "load_captioner"]


def _stack(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([f[key] for f in features]) for key in features[0]}


class _AltogetherPreprocess:
    def __init__(self, processor):
        self.processor = processor

    def __call__(self, image, alt_texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.processor(images=[image], alt_text=[alt_texts or None], return_tensors="pt")
        return {key: value[0] for key, value in batch.items()}


class _AntarcticPreprocess:
    def __init__(self, processor):
        self.processor = processor

    def __call__(self, image, alt_texts: list[str]) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.processor.preprocess_images([image])["pixel_values"][0]}


class AltogetherShardCaptioner:
    """Image + deduplicated alt-texts (joined with '; ' by the processor) -> re-aligned caption."""

    output_key = "altogether"

    def __init__(self, model, processor, generate_kwargs: dict | None = None):
        self.model, self.processor = model, processor
        self.generate_kwargs = dict(generate_kwargs or {})
        self.preprocess = _AltogetherPreprocess(processor)

    collate = staticmethod(_stack)

    @torch.inference_mode()
    def generate(self, batch: dict[str, torch.Tensor]) -> list[str]:
        inputs = {k: v.to(self.model.device) for k, v in batch.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        sequences = self.model.generate(**inputs, **self.generate_kwargs)
        return self.processor.batch_decode(sequences)


class AntarcticShardCaptioner:
    """Image -> n-gram table -> BART candidates -> CLIP's favourite (alt-texts are not used)."""

    output_key = "antarctic"

    def __init__(self, model, processor, generate_kwargs: dict | None = None, top_k: int | None = None,
                 num_candidates: int | None = None, use_index: bool | None = None):
        self.model, self.processor = model, processor
        self.generate_kwargs = dict(generate_kwargs or {})
        self.top_k, self.num_candidates, self.use_index = top_k, num_candidates, use_index
        self.preprocess = _AntarcticPreprocess(processor)
        self.pipeline = model_pipeline(model, processor)

    collate = staticmethod(_stack)

    @torch.inference_mode()
    def generate(self, batch: dict[str, torch.Tensor]) -> list[str]:
        pixel_values = batch["pixel_values"].to(self.model.device, self.model.dtype)
        return self.pipeline.caption_pixels(pixel_values, top_k=self.top_k, num_candidates=self.num_candidates,
                                            generate_kwargs=self.generate_kwargs, use_index=self.use_index)


def load_captioner(model, processor=None, device: str | torch.device | None = None, dtype=None,
                   device_map: str | dict | None = None, generate_kwargs: dict | None = None,
                   top_k: int | None = None, num_candidates: int | None = None, use_index: bool | None = None,
                   pack_weights: bool = False):
    """A saved folder / Hub id (loaded with trust_remote_code) or an in-memory model -> shard captioner.

    `pack_weights`: fp32 linear layers on the CPU multiply by oneDNN-packed copies of their weights (see
    `hf_captioners.packed_linear`); layers on a GPU are left as they are.
    """
    from transformers import AutoModel, AutoProcessor

    if isinstance(model, str):
        path = model
        kwargs = {"trust_remote_code": True, "dtype": dtype or "auto"}  # "bfloat16", torch.float16, ...: transformers reads both
        if device_map is not None:
            kwargs["device_map"] = device_map
        model = AutoModel.from_pretrained(path, **kwargs)
        processor = processor or AutoProcessor.from_pretrained(path, trust_remote_code=True)
    elif processor is None:
        raise ValueError("pass the processor together with an in-memory model")
    if device is not None and device_map is None:
        model = model.to(device)
    model.eval()
    if pack_weights:
        from hf_captioners.packed_linear import pack_linear_weights

        pack_linear_weights(model)
    adapter = spec_for(model.config.model_type).adapter_class()
    options = {k: v for k, v in {"top_k": top_k, "num_candidates": num_candidates, "use_index": use_index}.items()
               if v is not None}
    unknown = set(options) - set(inspect.signature(adapter).parameters)
    if unknown:
        raise ValueError(f"{model.config.model_type} captioners take no {', '.join(sorted(unknown))}")
    return adapter(model, processor, generate_kwargs, **options)
