"""antarctic-captions as a Transformers model. The files beside this one are also valid Hub remote code.

Importing the package registers the classes with the Auto classes, so saved folders load here without
`trust_remote_code`; elsewhere they load with it, from the copied files.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .configuration_antarctic import AntarcticConfig
from .image_processing_antarctic import AntarcticImageProcessor
from .modeling_antarctic import AntarcticForConditionalGeneration, AntarcticPreTrainedModel
from .pipeline_antarctic import AntarcticCaptionPipeline
from .processing_antarctic import AntarcticProcessor
from .retrieval_antarctic import AntarcticCache, AntarcticRetriever, CacheError, build_ngram_entries

AutoConfig.register(AntarcticConfig.model_type, AntarcticConfig, exist_ok=True)
AutoModel.register(AntarcticConfig, AntarcticForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(AntarcticConfig, AntarcticForConditionalGeneration, exist_ok=True)
AutoProcessor.register(AntarcticConfig, AntarcticProcessor, exist_ok=True)
AutoImageProcessor.register(AntarcticConfig, image_processor_classes={"pil": AntarcticImageProcessor}, exist_ok=True)

__all__ = [
    "AntarcticCache",
    "AntarcticCaptionPipeline",
    "AntarcticConfig",
    "AntarcticForConditionalGeneration",
    "AntarcticImageProcessor",
    "AntarcticPreTrainedModel",
    "AntarcticProcessor",
    "AntarcticRetriever",
    "CacheError",
    "build_ngram_entries",
]
