"""Altogether / ClipCap as a Transformers model: frozen CLIP tower -> prefix mapper -> causal LM.

The image becomes `prefix_length` embeddings written over `<image>` placeholder tokens of `input_ids`
(LLaVA style). Keeping the prefix inside the token sequence is what lets `GenerationMixin` run greedy, beam
and sampled decoding with a KV cache and no `generate` override: the cache, attention mask and positions
all see one ordinary sequence. Mapper parameter names follow ClipCap's `clip_project.*` so released
ClipCap checkpoints convert by a prefix rename.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    CLIPVisionModelWithProjection,
    GenerationConfig,
    GenerationMixin,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.loss.loss_utils import ForCausalLMLoss
from transformers.utils import ModelOutput, logging

from .configuration_altogether import AltogetherConfig
from .pipeline_altogether import AltogetherImageToTextPipeline

logger = logging.get_logger(__name__)

__all__ = [
    "AltogetherCausalLMOutputWithPast",
    "AltogetherForConditionalGeneration",
    "AltogetherImageToTextPipeline",
    "AltogetherMLPMapper",
    "AltogetherPreTrainedModel",
    "AltogetherTransformerMapper",
    "clipcap_beam_search",
]

# The original's sampling settings (Altogether inference script), shipped as the model's generation_config.
DEFAULT_GENERATION = {"do_sample": True, "temperature": 0.2, "top_p": 0.7, "top_k": 50, "max_new_tokens": 192}


@dataclass
class AltogetherCausalLMOutputWithPast(ModelOutput):
    """Causal-LM output plus `prefix_embeds` (B, prefix_length, hidden): the mapped image prefix."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    past_key_values: Cache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    prefix_embeds: torch.FloatTensor | None = None


class AltogetherMapperAttention(nn.Module):
    """ClipCap's bidirectional multi-head self-attention: bias-free q and joint kv projections."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.to_queries = nn.Linear(dim, dim, bias=False)
        self.to_keys_values = nn.Linear(dim, 2 * dim, bias=False)
        self.project = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        q = self.to_queries(x).view(b, n, h, c // h).transpose(1, 2)
        k, v = self.to_keys_values(x).view(b, n, 2, h, c // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.project(out.transpose(1, 2).reshape(b, n, c))


class AltogetherMapperMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class AltogetherMapperLayer(nn.Module):
    """Pre-LN block: x + attn(LN(x)), then x + mlp(LN(x)); no final norm (as in ClipCap)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = AltogetherMapperAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = AltogetherMapperMLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class AltogetherMapperStack(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_layers: int, mlp_ratio: float):
        super().__init__()
        self.layers = nn.ModuleList(AltogetherMapperLayer(dim, num_heads, mlp_ratio) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class AltogetherTransformerMapper(nn.Module):
    """ClipCap TransformerMapper: image embedding -> `clip_length` tokens, then learned constants
    appended; the transformer mixes them and the constants' outputs are the prefix."""

    def __init__(self, config: AltogetherConfig):
        super().__init__()
        dim = config.text_hidden_size
        self.clip_length = config.clip_length
        self.linear = nn.Linear(config.image_embed_dim, config.clip_length * dim)
        self.prefix_const = nn.Parameter(torch.randn(config.prefix_length, dim))
        self.transformer = AltogetherMapperStack(
            dim, config.mapper_num_heads, config.mapper_num_layers, config.mapper_mlp_ratio
        )

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        x = self.linear(image_embeds).view(image_embeds.shape[0], self.clip_length, -1)
        const = self.prefix_const.unsqueeze(0).expand(image_embeds.shape[0], -1, -1)
        return self.transformer(torch.cat((x, const), dim=1))[:, self.clip_length :]


class AltogetherMLPMapper(nn.Module):
    """ClipCap MLP mapper: Linear -> Tanh -> Linear to prefix_length * hidden."""

    def __init__(self, config: AltogetherConfig):
        super().__init__()
        self.prefix_length = config.prefix_length
        out = config.text_hidden_size * config.prefix_length
        self.model = nn.Sequential(nn.Linear(config.image_embed_dim, out // 2), nn.Tanh(), nn.Linear(out // 2, out))

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        return self.model(image_embeds).view(image_embeds.shape[0], self.prefix_length, -1)


def build_mapper(config: AltogetherConfig) -> nn.Module:
    return AltogetherTransformerMapper(config) if config.mapper_type == "transformer" else AltogetherMLPMapper(config)


class AltogetherPreTrainedModel(PreTrainedModel):
    config_class = AltogetherConfig
    config: AltogetherConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["AltogetherMapperLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, AltogetherTransformerMapper):
            init.normal_(module.prefix_const, mean=0.0, std=1.0)  # ClipCap draws the constants from randn


class AltogetherForConditionalGeneration(AltogetherPreTrainedModel, GenerationMixin):
    """`vision_model` (CLIPVisionModelWithProjection) -> `mapper` -> `language_model` (any causal LM).

    Inputs come from `AltogetherProcessor`: `input_ids` start with `prefix_length` `<image>` tokens,
    then the alt-text prompt; pass `pixel_values`, or precomputed pooled CLIP `image_embeds`.
    """

    def __init__(self, config: AltogetherConfig):
        super().__init__(config)
        self.vision_model = CLIPVisionModelWithProjection._from_config(config.vision_config)
        self.mapper = build_mapper(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        # one config object per backbone, so resizing or attention settings stay in sync when saved
        config.vision_config = self.vision_model.config
        config.text_config = self.language_model.config
        self.post_init()
        self.generation_config = self._default_generation_config()
        self.apply_freeze()

    def _default_generation_config(self, pad_token_id=None, eos_token_id=None) -> GenerationConfig:
        text = self.config.text_config
        eos = eos_token_id if eos_token_id is not None else text.eos_token_id
        pad = pad_token_id if pad_token_id is not None else getattr(text, "pad_token_id", None)
        return GenerationConfig(
            **DEFAULT_GENERATION,
            bos_token_id=getattr(text, "bos_token_id", None),
            eos_token_id=eos,
            pad_token_id=pad if pad is not None else eos,
        )

    # ---- freezing: re-applied after loading because from_pretrained re-enables grads ----
    def apply_freeze(self) -> None:
        """Turn off gradients of the backbones named in the config and keep them in eval mode (no dropout)."""
        if self.config.freeze_vision:
            self.vision_model.requires_grad_(False)
            self.vision_model.eval()
        if self.config.freeze_text_model:
            self.language_model.requires_grad_(False)
            self.language_model.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.freeze_vision:
            self.vision_model.eval()
        if self.config.freeze_text_model:
            self.language_model.eval()  # ClipCap trains its mapper under a GPT-2 in eval mode
        return self

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.apply_freeze()
        return loaded

    @classmethod
    def from_backbones(
        cls,
        vision_model,
        text_model,
        processor=None,
        image_token_id: int | None = None,
        vision_kwargs: dict | None = None,
        text_kwargs: dict | None = None,
        **config_kwargs,
    ) -> AltogetherForConditionalGeneration:
        """Assemble a captioner from pretrained backbones with a freshly initialised mapper.

        `vision_model`: a CLIPVisionModelWithProjection, a CLIPModel, or a name/path of either (e.g.
        "facebook/metaclip-h14-fullcc2.5b"). `text_model`: a causal LM or its name/path (e.g. "facebook/opt-1.3b").
        `processor` (from `AltogetherProcessor.from_backbones`) supplies the `<image>` id, the grown vocabulary
        and prefix/prompt lengths; without it pass `image_token_id`. `config_kwargs` go to AltogetherConfig.
        """
        vision = _as_vision_tower(vision_model, **(vision_kwargs or {}))
        text = (
            AutoModelForCausalLM.from_pretrained(text_model, **(text_kwargs or {}))
            if isinstance(text_model, (str, os.PathLike))
            else text_model
        )
        pad_token_id = eos_token_id = None
        vocab_size = None
        if processor is not None:
            for name in ("prefix_length", "prompt_length"):
                value = getattr(processor, name)
                if config_kwargs.setdefault(name, value) != value:
                    raise ValueError(f"{name}={config_kwargs[name]} disagrees with the processor's {name}={value}")
            image_token_id = processor.image_token_id
            vocab_size = len(processor.tokenizer)
            pad_token_id, eos_token_id = processor.tokenizer.pad_token_id, processor.tokenizer.eos_token_id
        if image_token_id is None:
            raise ValueError("from_backbones needs `processor` or `image_token_id` (the `<image>` placeholder id)")
        vocab_size = max(vocab_size or 0, image_token_id + 1)
        config_kwargs.setdefault("lm_vocab_size", text.get_output_embeddings().weight.shape[0])
        if text.get_input_embeddings().num_embeddings < vocab_size:
            text.resize_token_embeddings(vocab_size, mean_resizing=False)

        config = AltogetherConfig(
            vision_config=vision.config, text_config=text.config, image_token_id=image_token_id, **config_kwargs
        )
        with torch.device("meta"):
            model = cls(config)
        model.vision_model = vision
        model.language_model = text
        model.mapper = build_mapper(config).to(device=text.device, dtype=text.dtype)
        model.mapper.apply(model._init_weights)
        model.config.vision_config, model.config.text_config = vision.config, text.config
        model.generation_config = model._default_generation_config(pad_token_id, eos_token_id)
        if processor is not None:  # generate as many tokens as a training caption holds, within the LM's positions
            positions = getattr(text.config, "max_position_embeddings", None) or getattr(text.config, "n_positions", None)
            room = positions - config.prefix_length - config.prompt_length if positions else processor.caption_length
            model.generation_config.max_new_tokens = max(1, min(processor.caption_length, room))
        model.apply_freeze()
        return model

    # ---- embeddings ----
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self):
        return self.language_model.get_decoder()

    def resize_token_embeddings(self, *args, **kwargs):
        embeddings = self.language_model.resize_token_embeddings(*args, **kwargs)
        self.config.text_config = self.language_model.config
        return embeddings

    # ---- image -> prefix ----
    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled, projected CLIP embedding (B, projection_dim), before any normalisation."""
        pixel_values = pixel_values.to(device=self.vision_model.device, dtype=self.vision_model.dtype)
        return self.vision_model(pixel_values=pixel_values).image_embeds

    def get_prefix_embeds(
        self, pixel_values: torch.Tensor | None = None, image_embeds: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, prefix_length, hidden) prefix from pixels or from cached CLIP embeddings."""
        if (pixel_values is None) == (image_embeds is None):
            raise ValueError("pass exactly one of `pixel_values` or `image_embeds`")
        if image_embeds is None:
            image_embeds = self.get_image_features(pixel_values)
        if image_embeds.ndim != 2 or image_embeds.shape[-1] != self.config.image_embed_dim:
            raise ValueError(
                f"image_embeds must have shape (batch, {self.config.image_embed_dim}), got {tuple(image_embeds.shape)}"
            )
        mapper_param = next(self.mapper.parameters())
        image_embeds = image_embeds.to(device=mapper_param.device, dtype=mapper_param.dtype)
        if self.config.normalize_image_embeds:
            image_embeds = F.normalize(image_embeds, dim=-1)
        return self.mapper(image_embeds)

    def _place_prefix(self, input_ids, inputs_embeds, prefix):
        if self.config.image_token_id is None:
            raise ValueError("config.image_token_id is not set: build the model with from_backbones(processor=...)")
        mask = input_ids == self.config.image_token_id
        expected = prefix.shape[0] * prefix.shape[1]
        if int(mask.sum()) != expected:
            raise ValueError(
                f"input_ids hold {int(mask.sum())} <image> tokens but the {prefix.shape[0]} image(s) give "
                f"{expected} prefix embeddings ({prefix.shape[1]} each): build inputs with AltogetherProcessor"
            )
        prefix = prefix.to(device=inputs_embeds.device, dtype=inputs_embeds.dtype)
        return inputs_embeds.masked_scatter(mask.unsqueeze(-1).to(inputs_embeds.device), prefix)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        image_embeds: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> AltogetherCausalLMOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of `input_ids` or `inputs_embeds`")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        prefix = None
        if pixel_values is not None or image_embeds is not None:
            if input_ids is None:
                raise ValueError("images need `input_ids` with <image> placeholders to mark where the prefix goes")
            prefix = self.get_prefix_embeds(pixel_values=pixel_values, image_embeds=image_embeds)
            inputs_embeds = self._place_prefix(input_ids, inputs_embeds, prefix)
        elif input_ids is not None and self.config.image_token_id is not None and past_key_values is None:
            if bool((input_ids == self.config.image_token_id).any()):
                raise ValueError("input_ids contain <image> placeholders but no `pixel_values` or `image_embeds`")

        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **{**kwargs, "return_dict": True},
        )
        logits = outputs.logits
        if self.config.lm_vocab_size is not None and logits.shape[-1] > self.config.lm_vocab_size:
            logits = logits[..., : self.config.lm_vocab_size]
        loss = None
        if labels is not None:
            if isinstance(logits_to_keep, int) and logits_to_keep > 0:
                # logits for the last positions only (training: the caption's): their labels are the last ones
                labels = labels[:, -logits_to_keep:]
            loss = ForCausalLMLoss(logits.contiguous(), labels, logits.shape[-1], num_items_in_batch=num_items_in_batch)
        return AltogetherCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            prefix_embeds=prefix,
        )

    def prepare_inputs_for_generation(self, *args, image_embeds=None, is_first_iteration=False, **kwargs):
        # pixel_values are dropped after the prefill by GenerationMixin itself; image_embeds is ours to drop
        model_inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        if image_embeds is not None and (is_first_iteration or not kwargs.get("use_cache", True)):
            model_inputs["image_embeds"] = image_embeds
        return model_inputs


@torch.no_grad()
def clipcap_beam_search(
    model,
    input_ids: torch.LongTensor,
    logits_processor=None,
    stopping_criteria=None,
    generation_config: GenerationConfig | None = None,
    synced_gpus: bool = False,
    streamer=None,
    **model_kwargs,
) -> torch.LongTensor:
    """ClipCap's own beam search, for `model.generate(..., num_beams=5, custom_generate=clipcap_beam_search)`.

    It differs from transformers' beam search in what it ranks: ClipCap's `generate_beam` (`predict.py` lines
    164-237) keeps finished beams among the `num_beams` slots and ranks every candidate by its MEAN
    log-probability at every step (finished beams keep their length and score), stops when all beams have
    emitted the stop token (`generation_config.eos_token_id`: "." for a converted ClipCap) or after
    `max_new_tokens`, and returns beams sorted by mean log-probability. Batched over images with a KV cache;
    the tokens equal the original's one-image, recompute-everything loop. `temperature` divides the logits as
    in the original; `logits_processor` (empty for ClipCap's settings) is applied before the softmax.
    Returns `num_return_sequences` rows per image: the prompt, then the beam's tokens, right-padded.
    """
    config = generation_config
    beams = config.num_beams
    rows = input_ids.shape[0]
    if beams < 1 or rows % beams:
        raise ValueError(f"clipcap_beam_search: {rows} rows are not a multiple of num_beams={beams}")
    returned = config.num_return_sequences or 1
    if returned > beams:
        raise ValueError(f"num_return_sequences={returned} > num_beams={beams}")
    stop = config.eos_token_id
    stop = int(stop[0] if isinstance(stop, (list, tuple)) else stop)
    pad = config.pad_token_id if config.pad_token_id is not None else stop
    steps = config.max_new_tokens or (config.max_length - input_ids.shape[1])
    temperature = config.temperature if config.temperature and config.temperature > 0 else 1.0
    images, device = rows // beams, input_ids.device

    mask = model_kwargs.get("attention_mask")
    mask = torch.ones_like(input_ids) if mask is None else mask
    inputs = {k: model_kwargs[k] for k in ("pixel_values", "image_embeds") if model_kwargs.get(k) is not None}
    out = model(input_ids=input_ids, attention_mask=mask, use_cache=True, logits_to_keep=1, **inputs)
    cache = out.past_key_values
    logits = out.logits[:, -1].float()

    tokens = torch.empty(images, beams, 0, dtype=torch.long, device=device)
    scores = torch.zeros(images, beams, device=device)
    lengths = torch.ones(images, beams, device=device)
    stopped = torch.zeros(images, beams, dtype=torch.bool, device=device)
    offsets = (torch.arange(images, device=device) * beams)[:, None]
    for step in range(steps):
        logits = logits / temperature
        if logits_processor is not None:
            logits = logits_processor(torch.cat([input_ids, tokens.reshape(rows, -1)], dim=1), logits)
        logprobs = logits.softmax(-1).log().view(images, beams, -1)  # softmax().log(), as the original
        vocab = logprobs.shape[-1]
        if step == 0:  # all beams of an image share the prefix: the first row's top-k starts them
            scores, next_tokens = logprobs[:, 0].topk(beams, dim=-1)
            source = torch.zeros(images, beams, dtype=torch.long, device=device)
        else:
            frozen = stopped.all(dim=1, keepdim=True)  # the original has left its loop for these images
            logprobs = logprobs.masked_fill(stopped[..., None], float("-inf"))
            logprobs[..., 0] = torch.where(stopped, 0.0, logprobs[..., 0])
            grown = lengths + (~stopped).float()
            mean = ((scores[..., None] + logprobs) / grown[..., None]).view(images, -1)
            best, flat = mean.topk(beams, dim=-1)
            source = torch.where(frozen, torch.arange(beams, device=device), flat // vocab)
            next_tokens = torch.where(frozen, pad, flat % vocab)
            new_lengths = grown.gather(1, source)
            scores = torch.where(frozen, scores, best * new_lengths)
            lengths = torch.where(frozen, lengths, new_lengths)
            stopped = stopped.gather(1, source)
        tokens = torch.cat([tokens.gather(1, source[..., None].expand(-1, -1, tokens.shape[-1])), next_tokens[..., None]], dim=2)
        stopped = stopped | (next_tokens == stop)
        if bool(stopped.all()) or step == steps - 1:
            break
        cache.reorder_cache((offsets + source).view(-1))
        mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)
        out = model(input_ids=next_tokens.view(rows, 1), attention_mask=mask, past_key_values=cache, use_cache=True)
        cache, logits = out.past_key_values, out.logits[:, -1].float()

    order = (scores / lengths).argsort(dim=1, descending=True)[:, :returned]
    lengths = lengths.gather(1, order).long()
    tokens = tokens.gather(1, order[..., None].expand(-1, -1, tokens.shape[-1]))
    keep = torch.arange(tokens.shape[-1], device=device) < lengths[..., None]
    tokens = tokens.masked_fill(~keep, pad).view(images * returned, -1)
    prompt = input_ids.view(images, beams, -1)[:, :returned].reshape(images * returned, -1)
    return torch.cat([prompt, tokens], dim=1)


# reachable from a model loaded as remote code: `model.generate(..., custom_generate=model.clipcap_beam_search)`
AltogetherForConditionalGeneration.clipcap_beam_search = staticmethod(clipcap_beam_search)


def _as_vision_tower(vision_model, **kwargs) -> CLIPVisionModelWithProjection:
    if isinstance(vision_model, (str, os.PathLike)):
        config = AutoConfig.from_pretrained(vision_model)
        if hasattr(config, "vision_config"):
            # a full CLIP checkpoint: the projection width lives on the outer config
            vision_config = copy.deepcopy(config.vision_config)
            vision_config.projection_dim = config.projection_dim
            kwargs.setdefault("config", vision_config)
        return CLIPVisionModelWithProjection.from_pretrained(vision_model, **kwargs)
    if isinstance(vision_model, CLIPVisionModelWithProjection):
        return vision_model
    if hasattr(vision_model, "vision_model") and hasattr(vision_model, "visual_projection"):
        # a full CLIPModel: keep its tower and projection, drop the text side
        vision_config = copy.deepcopy(vision_model.config.vision_config)
        vision_config.projection_dim = vision_model.config.projection_dim
        with torch.device("meta"):
            tower = CLIPVisionModelWithProjection(vision_config)
        tower.vision_model = vision_model.vision_model
        tower.visual_projection = vision_model.visual_projection
        return tower.to(vision_model.dtype)
    raise TypeError(
        f"vision_model must be a CLIPVisionModelWithProjection, a CLIPModel or a name/path, got {type(vision_model).__name__}"
    )


AltogetherConfig.register_for_auto_class()
AltogetherForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
