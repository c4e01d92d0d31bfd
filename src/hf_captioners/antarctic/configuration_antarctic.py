"""Configuration of antarctic-captions: a frozen CLIP that retrieves n-grams and a frozen BART that writes.

Field names avoid generation parameters (`top_k`, `max_length`, ...): transformers moves those out of
model configs, so the table size is `table_top_k` and decoding defaults live in `generation_config`.
"""

from __future__ import annotations

from transformers import BartConfig, CLIPConfig, PreTrainedConfig

__all__ = ["AntarcticConfig"]

AUTO_MAP = {
    "AutoConfig": "configuration_antarctic.AntarcticConfig",
    "AutoModel": "modeling_antarctic.AntarcticForConditionalGeneration",
    "AutoModelForImageTextToText": "modeling_antarctic.AntarcticForConditionalGeneration",
    "AutoProcessor": "processing_antarctic.AntarcticProcessor",
}
CUSTOM_PIPELINES = {
    "image-to-text": {
        "impl": "pipeline_antarctic.AntarcticCaptionPipeline",
        "pt": ["AutoModel"],
        "type": "multimodal",
    }
}


class AntarcticConfig(PreTrainedConfig):
    r"""
    clip_config: `CLIPConfig` of the retriever / re-ranker (ViT-B/16, projection 512 in the release).
    bart_config: `BartConfig` of the table-to-caption writer (bart-large in the release).
    table_top_k: cache entries per image in the linearized table (10 in the release).
    table_separator: written after every entry, so a table reads `"e1 | e2 | ... | ek | "`.
    encoder_max_length / decoder_max_length: BART token limits of the table and the caption (128 / 32).
    """

    model_type = "antarctic"
    sub_configs_defaults = {"clip_config": CLIPConfig, "bart_config": BartConfig}

    clip_config: dict | PreTrainedConfig | None = None
    bart_config: dict | PreTrainedConfig | None = None
    table_top_k: int = 10
    table_separator: str = " | "
    encoder_max_length: int = 128
    decoder_max_length: int = 32
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.table_top_k < 1:
            raise ValueError(f"table_top_k must be >= 1, got {self.table_top_k}")
        if not self.table_separator.strip():
            raise ValueError(f"table_separator must contain a visible character, got {self.table_separator!r}")
        if self.encoder_max_length < 2 or self.decoder_max_length < 2:
            raise ValueError("encoder_max_length and decoder_max_length must be >= 2")
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(AUTO_MAP)
        if getattr(self, "custom_pipelines", None) is None:
            self.custom_pipelines = {k: dict(v) for k, v in CUSTOM_PIPELINES.items()}

    @property
    def projection_dim(self) -> int:
        return self.clip_config.projection_dim

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        """BART reads and writes all text; CLIP's text tower only scores."""
        return self.bart_config

