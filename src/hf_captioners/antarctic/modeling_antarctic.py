"""antarctic-captions: frozen CLIP retrieves n-grams, a frozen (LayerNorm-tuned) BART writes, CLIP re-ranks.

The model is BART over linearized tables as far as `forward` / `generate` are concerned (so GenerationMixin,
beam search, sampling and training with `labels` are BART's own) plus CLIP's image tower (`get_image_features`).
Its n-gram cache is saved and loaded with it; `AntarcticRetriever` (retrieval_antarctic.py) turns image
embeddings into tables and scores candidates, and the pipeline runs retrieve -> generate -> re-rank.
"""

from __future__ import annotations

import logging
import os

import torch
from transformers import (
    BartForConditionalGeneration,
    CLIPModel,
    EncoderDecoderCache,
    GenerationConfig,
    GenerationMixin,
    PreTrainedModel,
)
from transformers.models.bart.modeling_bart import BartAttention

from .configuration_antarctic import AntarcticConfig
from .pipeline_antarctic import AntarcticCaptionPipeline
from .retrieval_antarctic import AntarcticCache, CacheError

logger = logging.getLogger(__name__)

__all__ = [
    "AntarcticCaptionPipeline",
    "AntarcticForConditionalGeneration",
    "AntarcticPreTrainedModel",
    "ImageSharedCrossAttention",
]

_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")


class ImageSharedCrossAttention(BartAttention):
    """BART's cross-attention when the encoder output holds one row per image and the decoder one row per beam
    or candidate (consecutive rows of an image, as `generate` repeats them): an image's rows become extra query
    positions against its one copy of the keys and values. Cross-attention is not causal, so the result is
    the same, while the keys and values are computed, cached and read once per image, not once per sequence.
    Other attention kernels than eager and SDPA get the encoder output repeated per row, as in stock BART
    (flash attention reads a padding mask's last columns as the queries' own padding when queries outnumber 1)."""

    folds = ("sdpa", "eager")

    def forward(self, hidden_states, key_value_states=None, past_key_values=None, attention_mask=None, **kwargs):
        rows = hidden_states.shape[0]
        if key_value_states is None or key_value_states.shape[0] == rows:
            return super().forward(hidden_states, key_value_states, past_key_values, attention_mask, **kwargs)
        images, tgt = key_value_states.shape[0], hidden_states.shape[1]
        if rows % images:
            raise ValueError(f"{rows} decoder rows cannot share the encoder outputs of {images} inputs")
        group = rows // images
        if self.config._attn_implementation not in self.folds:
            cached = isinstance(past_key_values, EncoderDecoderCache) and past_key_values.is_updated.get(self.layer_idx)
            if not cached:  # (once cached, the keys and values are read from the cache, already per row)
                key_value_states = key_value_states.repeat_interleave(group, dim=0)
            if attention_mask is not None and attention_mask.shape[0] == images:
                attention_mask = attention_mask.repeat_interleave(group, dim=0)
            return super().forward(hidden_states, key_value_states, past_key_values, attention_mask, **kwargs)
        if attention_mask is not None:
            if attention_mask.shape[0] == rows:
                attention_mask = attention_mask[::group]  # the same padding for every row of an image
            if attention_mask.dim() == 4 and attention_mask.shape[2] > 1:
                attention_mask = attention_mask.repeat(1, 1, group, 1)
        output, weights = super().forward(hidden_states.reshape(images, group * tgt, -1), key_value_states,
                                          past_key_values, attention_mask, **kwargs)
        if weights is not None:
            weights = weights.unflatten(2, (group, tgt)).transpose(1, 2).flatten(0, 1)
        return output.reshape(rows, tgt, -1), weights


def share_cross_attention_across_sequences(bart: BartForConditionalGeneration) -> None:
    """Make every decoder layer's cross-attention an `ImageSharedCrossAttention` (same weights and keys)."""
    for layer in bart.get_decoder().layers:
        if type(layer.encoder_attn) is BartAttention:
            layer.encoder_attn.__class__ = ImageSharedCrossAttention


class AntarcticPreTrainedModel(PreTrainedModel):
    config_class = AntarcticConfig
    base_model_prefix = "antarctic"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["CLIPEncoderLayer", "BartEncoderLayer", "BartDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True


class AntarcticForConditionalGeneration(AntarcticPreTrainedModel, GenerationMixin):
    def __init__(self, config: AntarcticConfig, cache: AntarcticCache | None = None):
        super().__init__(config)
        self.clip = CLIPModel(config.clip_config)
        self.bart = BartForConditionalGeneration(config.bart_config)
        share_cross_attention_across_sequences(self.bart)
        self.ngram_cache = None
        self.post_init()
        self.generation_config = self.default_generation_config(config)
        self.freeze()
        if cache is not None:
            self.set_cache(cache)

    @staticmethod
    def default_generation_config(config: AntarcticConfig) -> GenerationConfig:
        """Beam 3, return 3, 32 tokens. BART starts from `decoder_start_token_id` then is forced to `<s>`,
        which is exactly what shift-right of `<s> caption </s>` labels feeds it in training."""
        bart = config.bart_config
        return GenerationConfig(
            num_beams=3,
            num_return_sequences=3,
            max_length=config.decoder_max_length,
            decoder_start_token_id=bart.decoder_start_token_id,
            bos_token_id=bart.bos_token_id,
            eos_token_id=bart.eos_token_id,
            pad_token_id=bart.pad_token_id,
            forced_bos_token_id=bart.bos_token_id,
            forced_eos_token_id=bart.eos_token_id,
        )

    # ---- assembly ------------------------------------------------------------------------------------------
    @classmethod
    def from_backbones(cls, clip, bart, cache: AntarcticCache | None = None, **config_kwargs):
        """Put a pretrained CLIP and BART (models or names/paths, e.g. `openai/clip-vit-base-patch16` and
        `facebook/bart-large`) together without copying weights: the composite is built on the meta device."""
        if isinstance(clip, (str, os.PathLike)):
            clip = CLIPModel.from_pretrained(clip)
        if isinstance(bart, (str, os.PathLike)):
            bart = BartForConditionalGeneration.from_pretrained(bart)
        config = AntarcticConfig(clip_config=clip.config, bart_config=bart.config, **config_kwargs)
        with torch.device("meta"):
            model = cls(config)
        model.clip, model.bart = clip, bart
        share_cross_attention_across_sequences(bart)
        model.freeze()
        if cache is not None:
            model.set_cache(cache)
        return model

    def freeze(self) -> None:
        """CLIP and BART are frozen; LayerNorm tuning re-enables its targets through PEFT (`ln_tuning.py`)."""
        self.requires_grad_(False)

    # ---- the cache -----------------------------------------------------------------------------------------
    @property
    def cache(self) -> AntarcticCache | None:
        return self.ngram_cache

    def set_cache(self, cache: AntarcticCache) -> None:
        """Swap the n-gram cache (e.g. one with custom entries); its dim must be CLIP's projection dim."""
        if not isinstance(cache, AntarcticCache):
            raise TypeError(f"set_cache: expected an AntarcticCache, got {type(cache).__name__}")
        if cache.dim != self.config.projection_dim:
            raise CacheError(f"set_cache: cache dim {cache.dim} != CLIP projection dim {self.config.projection_dim}")
        self.ngram_cache = cache

    # ---- CLIP side -----------------------------------------------------------------------------------------
    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixel_values = pixel_values.to(device=self.device, dtype=self.clip.dtype)
        features = self.clip.get_image_features(pixel_values=pixel_values).pooler_output
        return torch.nn.functional.normalize(features.float(), dim=-1)

    # ---- BART side -----------------------------------------------------------------------------------------
    def get_encoder(self, modality: str | None = None):
        return self.clip.vision_model if modality in ("image", "video") else self.bart.get_encoder()

    def get_decoder(self):
        return self.bart.get_decoder()

    def get_input_embeddings(self):
        return self.bart.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.bart.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.bart.get_output_embeddings()

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None,
                labels=None, use_cache=None, **kwargs):
        """BART over a tokenized table; with `labels` (tokenized captions) returns the training loss."""
        return self.bart(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs,
            past_key_values=past_key_values, inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds, labels=labels, use_cache=use_cache, **kwargs,
        )

    def _expand_inputs_for_generation(self, expand_size=1, is_encoder_decoder=False, input_ids=None, **model_kwargs):
        """As GenerationMixin's, but the encoder output and its attention mask stay one row per table: the beams
        or candidates of a table read it through `ImageSharedCrossAttention` instead of `expand_size` copies
        (BART builds the cross-attention mask with the encoder output's batch size, so the two must agree)."""
        shared = {key: model_kwargs.pop(key) for key in ("encoder_outputs", "attention_mask") if key in model_kwargs}
        if is_encoder_decoder and shared.get("encoder_outputs") is None:
            raise ValueError("If `is_encoder_decoder` is True, make sure that `encoder_outputs` is defined.")
        input_ids, model_kwargs = super()._expand_inputs_for_generation(expand_size, False, input_ids, **model_kwargs)
        return input_ids, {**model_kwargs, **shared}

    def _reorder_cache(self, past_key_values, beam_idx):
        """Beam search only moves beams within an image, and an image's beams share one cross-attention cache
        (its table's keys and values, one copy per image), so only the self-attention cache is reordered."""
        if isinstance(past_key_values, EncoderDecoderCache):
            past_key_values.self_attention_cache.reorder_cache(beam_idx)
        else:
            past_key_values.reorder_cache(beam_idx)
        return past_key_values

    # ---- files ---------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, *args, save_cache: bool = True, **kwargs):
        """Weights, config and remote code as usual, plus the cache (`entries.txt` + `cache.safetensors`)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if save_cache and self.ngram_cache is not None:
            self.ngram_cache.save_pretrained(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, cache: AntarcticCache | None = None,
                        load_cache: bool = True, **kwargs):
        """As `PreTrainedModel.from_pretrained`, then re-freeze (loading re-enables gradients) and load the
        folder's cache, or attach `cache=` instead."""
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model.freeze()
        if cache is None and load_cache:
            hub_kwargs = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
            try:
                cache = AntarcticCache.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
            except OSError:
                logger.warning("%s has no n-gram cache; attach one with model.set_cache()", pretrained_model_name_or_path)
        if cache is not None:
            model.set_cache(cache)
        return model


AntarcticConfig.register_for_auto_class()
AntarcticForConditionalGeneration.register_for_auto_class("AutoModel")
