"""Configuration of Altogether / ClipCap: a CLIP vision tower, a prefix mapper and any causal LM.

Defaults are the Altogether paper's model (MetaCLIP ViT-H/14 -> 8-layer transformer mapper, 40 prefix
tokens -> OPT-1.3B, alt-text prompt of 128 tokens). `prompt_length=0` gives plain ClipCap.
"""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

MAPPER_TYPES = ("transformer", "mlp")

# What Auto* classes and pipelines a saved checkpoint maps to; written into every config so a saved folder
# is loadable as Hub remote code with any of these entry points (register_for_auto_class keeps only one).
AUTO_MAP = {
    "AutoConfig": "configuration_altogether.AltogetherConfig",
    "AutoModel": "modeling_altogether.AltogetherForConditionalGeneration",
    "AutoModelForImageTextToText": "modeling_altogether.AltogetherForConditionalGeneration",
    "AutoProcessor": "processing_altogether.AltogetherProcessor",
}
CUSTOM_PIPELINES = {
    "image-to-text": {
        "impl": "pipeline_altogether.AltogetherImageToTextPipeline",
        "pt": ["AutoModelForImageTextToText"],
        "type": "multimodal",
    }
}

# MetaCLIP ViT-H/14 (quickgelu, 224 px): the vision tower of the released Altogether recipe.
METACLIP_H14_VISION = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "projection_dim": 1024,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
}


# facebook/opt-1.3b: the decoder of the released Altogether recipe.
OPT_1_3B = {
    "vocab_size": 50272,
    "hidden_size": 2048,
    "ffn_dim": 8192,
    "num_hidden_layers": 24,
    "num_attention_heads": 32,
    "max_position_embeddings": 2048,
    "word_embed_proj_dim": 2048,
    "do_layer_norm_before": True,
    "pad_token_id": 1,
    "bos_token_id": 2,
    "eos_token_id": 2,
}


class AltogetherConfig(PreTrainedConfig):
    r"""
    vision_config: a CLIP-family vision config with a projection (`clip_vision_model`, also MetaCLIP).
    text_config: any causal LM config (OPT, GPT-2, Llama-style ...).
    mapper_type: "transformer" (ClipCap TransformerMapper, used by Altogether) or "mlp" (ClipCap MLP).
    prefix_length: number of prefix tokens handed to the LM (= `<image>` placeholders in the input).
    clip_length: tokens the image embedding is expanded to before the transformer mapper.
    mapper_num_layers / mapper_num_heads / mapper_mlp_ratio: transformer mapper shape.
    normalize_image_embeds: L2-normalise CLIP embeddings (Altogether: yes; ClipCap: no).
    prompt_length: alt-text tokens (left-padded, pads attended); 0 means plain ClipCap.
    image_token_id: vocabulary id of the `<image>` placeholder (set when the processor adds the token).
    lm_vocab_size: rows of the LM's output that are its own vocabulary; rows added for `<image>` / `<pad>` get no
        logits, so neither the loss nor generation sees them (None: every row, for checkpoints made before).
    freeze_vision / freeze_text_model: which backbones get no gradient (and stay in eval mode, as ClipCap's
        `ClipCaptionPrefix.train` keeps GPT-2); re-applied after `from_pretrained`.
    """

    model_type = "altogether"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig, model_type="clip_vision_model", init_kwargs=METACLIP_H14_VISION
        ),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="opt", init_kwargs=OPT_1_3B),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    mapper_type: str = "transformer"
    prefix_length: int = 40
    clip_length: int = 40
    mapper_num_layers: int = 8
    mapper_num_heads: int = 8
    mapper_mlp_ratio: float = 2.0
    normalize_image_embeds: bool = True
    prompt_length: int = 128
    image_token_id: int | None = None
    lm_vocab_size: int | None = None
    freeze_vision: bool = True
    freeze_text_model: bool = False
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.mapper_type not in MAPPER_TYPES:
            raise ValueError(f"mapper_type must be one of {MAPPER_TYPES}, got {self.mapper_type!r}")
        if self.prefix_length < 1 or self.clip_length < 1:
            raise ValueError(f"prefix_length and clip_length must be >= 1, got {self.prefix_length}, {self.clip_length}")
        if self.prompt_length < 0:
            raise ValueError(f"prompt_length must be >= 0, got {self.prompt_length}")
        if self.mapper_type == "transformer" and self.text_hidden_size % self.mapper_num_heads:
            raise ValueError(
                f"text embedding size {self.text_hidden_size} is not divisible by mapper_num_heads={self.mapper_num_heads}"
            )
        if getattr(self.vision_config, "projection_dim", None) is None:
            raise ValueError("vision_config needs a `projection_dim` (a CLIP vision tower with projection)")
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(AUTO_MAP)
        if getattr(self, "custom_pipelines", None) is None:
            self.custom_pipelines = {task: dict(spec) for task, spec in CUSTOM_PIPELINES.items()}

    @property
    def image_embed_dim(self) -> int:
        return self.vision_config.projection_dim

    @property
    def text_hidden_size(self) -> int:
        # OPT-350m projects embeddings (word_embed_proj_dim != hidden_size): the prefix lives in embedding space
        return getattr(self.text_config, "word_embed_proj_dim", None) or self.text_config.hidden_size


__all__ = ["AltogetherConfig"]
