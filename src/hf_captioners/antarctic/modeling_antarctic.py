"""antarctic-captions: frozen CLIP retrieves n-grams, a frozen (LayerNorm-tuned) BART writes, CLIP re-ranks.

The model is BART over linearized tables as far as `forward` / `generate` are concerned (so GenerationMixin,
beam search, sampling and training with `labels` are BART's own); CLIP and the n-gram cache turn images into
those tables (`retrieve`) and choose among the candidates (`rerank`). `caption` runs the whole chain batched.
"""

from __future__ import annotations

import logging
import os

import torch
from transformers import (
    BartForConditionalGeneration,
    CLIPModel,
    GenerationConfig,
    GenerationMixin,
    PreTrainedModel,
)

from .configuration_antarctic import AntarcticConfig
from .pipeline_antarctic import AntarcticCaptionPipeline
from .retrieval_antarctic import AntarcticCache, CacheError

logger = logging.getLogger(__name__)

__all__ = ["AntarcticCaptionPipeline", "AntarcticForConditionalGeneration", "AntarcticPreTrainedModel"]

_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")


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

    def text_encoder(self, clip_tokenizer):
        """A function list[str] -> unit-norm CLIP text embeddings, for building or extending caches."""

        def encode(texts: list[str]) -> torch.Tensor:
            tokens = clip_tokenizer(list(texts), padding=True, truncation=True, max_length=self._clip_max_length,
                                    return_tensors="pt").to(self.device)
            return self.get_text_features(tokens["input_ids"], tokens["attention_mask"])

        return encode

    @property
    def _clip_max_length(self) -> int:
        return self.config.clip_config.text_config.max_position_embeddings

    # ---- CLIP side -----------------------------------------------------------------------------------------
    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixel_values = pixel_values.to(device=self.device, dtype=self.clip.dtype)
        features = self.clip.get_image_features(pixel_values=pixel_values).pooler_output
        return torch.nn.functional.normalize(features.float(), dim=-1)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        features = self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return torch.nn.functional.normalize(features.float(), dim=-1)

    @torch.no_grad()
    def retrieve(self, pixel_values=None, image_embeds=None, top_k: int | None = None):
        """Top-k cache entries per image by cosine, descending: (entries [B][k], scores [B, k], image_embeds)."""
        if self.ngram_cache is None:
            raise CacheError("retrieve: the model has no n-gram cache; load one with set_cache(AntarcticCache...)")
        if image_embeds is None:
            if pixel_values is None:
                raise ValueError("retrieve: pass pixel_values or image_embeds")
            image_embeds = self.get_image_features(pixel_values)
        k = top_k or self.config.table_top_k
        scores, indices = self.ngram_cache.search(image_embeds, k)
        return self.ngram_cache.lookup(indices), scores, image_embeds

    @torch.no_grad()
    def rerank(self, image_embeds: torch.Tensor, candidate_input_ids: torch.Tensor,
               candidate_attention_mask: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Cosine between each image and its candidates: image_embeds [B, D], candidates [B*n, L] -> [B, n]."""
        feats = torch.cat([
            self.get_text_features(candidate_input_ids[i : i + batch_size].to(self.device),
                                   candidate_attention_mask[i : i + batch_size].to(self.device))
            for i in range(0, candidate_input_ids.shape[0], batch_size)
        ])
        feats = feats.view(image_embeds.shape[0], -1, feats.shape[-1])
        return torch.einsum("bnd,bd->bn", feats, image_embeds.to(feats))

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

    # ---- the whole chain -----------------------------------------------------------------------------------
    def prepare_tables(self, pixel_values, processor, top_k: int | None = None, captions=None):
        """Images -> BART inputs (`input_ids`, `attention_mask`; `labels` too when captions are given)."""
        entries, _, _ = self.retrieve(pixel_values=pixel_values, top_k=top_k)
        return processor(tables=entries, text_target=captions).to(self.device)

    @torch.no_grad()
    def caption(self, pixel_values: torch.Tensor, processor, top_k: int | None = None,
                num_candidates: int | None = None, generate_kwargs: dict | None = None,
                return_candidates: bool = False, max_sequences_per_generate: int = 4096,
                rerank_batch_size: int = 1024):
        """Images -> captions: retrieve the top-k table, let BART write candidates, keep CLIP's favourite.

        `num_candidates` sets `num_return_sequences` (beam search widens to match; pass
        `generate_kwargs={"do_sample": True, "top_p": 0.9, "temperature": 0.7}` to sample up to 1000).
        Images are generated in groups of at most `max_sequences_per_generate` candidate sequences.
        Returns a list of captions, or with `return_candidates` a list of dicts with the caption, the table,
        the candidates and their CLIP scores.
        """
        entries, _, image_embeds = self.retrieve(pixel_values=pixel_values, top_k=top_k)
        tables = [processor.linearize(row) for row in entries]
        gen = dict(generate_kwargs or {})
        if num_candidates is not None:
            gen["num_return_sequences"] = num_candidates
        n = gen.setdefault("num_return_sequences", self.generation_config.num_return_sequences or 1)
        if gen.get("do_sample"):
            gen.setdefault("num_beams", 1)
        elif n > gen.get("num_beams", self.generation_config.num_beams or 1):
            gen["num_beams"] = n
        if "max_new_tokens" in gen:
            gen.setdefault("max_length", None)  # the saved 32-token default yields to an explicit max_new_tokens
        group = max(1, max_sequences_per_generate // n)

        candidates: list[str] = []
        for start in range(0, len(tables), group):
            inputs = processor(tables=tables[start : start + group]).to(self.device)
            sequences = self.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], **gen)
            candidates.extend(processor.batch_decode(sequences))
        clip_tokens = processor.clip_tokenize(candidates, max_length=self._clip_max_length)
        scores = self.rerank(image_embeds, clip_tokens["input_ids"], clip_tokens["attention_mask"],
                             batch_size=rerank_batch_size)
        best = scores.argmax(dim=1).tolist()
        captions = [candidates[i * n + j] for i, j in enumerate(best)]
        if not return_candidates:
            return captions
        return [
            {"caption": captions[i], "table": tables[i], "entries": entries[i],
             "candidates": candidates[i * n : (i + 1) * n], "scores": scores[i].tolist()}
            for i in range(len(tables))
        ]

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
