"""Altogether (and ClipCap) as a Transformers-native image captioner.

Names load lazily so `image_utils` stays cheap to import. The first access to a model-side name also
registers the classes with the Auto* factories, so saved checkpoints then load in this process without
`trust_remote_code`; the saved folders carry their own code for fresh environments.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "AltogetherConfig": "configuration_altogether",
    "AltogetherForConditionalGeneration": "modeling_altogether",
    "AltogetherPreTrainedModel": "modeling_altogether",
    "AltogetherImageProcessor": "image_processing_altogether",
    "AltogetherImageToTextPipeline": "pipeline_altogether",
    "AltogetherProcessor": "processing_altogether",
    "clean_text": "processing_altogether",
    "join_alt_texts": "processing_altogether",
    "register_auto_classes": None,
}

__all__ = list(_LAZY)

_registered = False


def register_auto_classes() -> None:
    """Map model_type "altogether" to our classes in AutoConfig / AutoModel / AutoModelForImageTextToText /
    AutoProcessor / AutoImageProcessor (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModel,
        AutoModelForImageTextToText,
        AutoProcessor,
    )

    from .configuration_altogether import AltogetherConfig
    from .image_processing_altogether import AltogetherImageProcessor
    from .modeling_altogether import AltogetherForConditionalGeneration
    from .processing_altogether import AltogetherProcessor

    AutoConfig.register(AltogetherConfig.model_type, AltogetherConfig, exist_ok=True)
    AutoModel.register(AltogetherConfig, AltogetherForConditionalGeneration, exist_ok=True)
    AutoModelForImageTextToText.register(AltogetherConfig, AltogetherForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(AltogetherConfig, AltogetherProcessor, exist_ok=True)
    AutoImageProcessor.register(AltogetherConfig, image_processor_classes={"pil": AltogetherImageProcessor}, exist_ok=True)
    _registered = True


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "register_auto_classes":
        return register_auto_classes
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    register_auto_classes()
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
