"""ClipCap checkpoints (rmokady/CLIP_prefix_caption `.pt`) -> `AltogetherForConditionalGeneration` with prompt_length 0.

ClipCap saved `model.state_dict()` of a module holding `clip_project` (the mapper) and `gpt` (GPT-2 LM head
model); CLIP was never inside. Our mapper keeps ClipCap's parameter names, so the mapper moves by a prefix
rename; GPT-2 moves to `language_model` minus the causal-mask buffers old transformers versions stored.
Shapes give every size except head counts (ClipCap: 8 mapper heads, GPT-2 small: 12).

The shared assembly (`assemble_captioner`) also serves the Altogether converter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from hf_captioners.convert.checkpoints import (
    CheckpointError,
    load_into,
    load_state_dict,
    strip_prefix,
    unwrap_ddp,
)

logger = logging.getLogger(__name__)

__all__ = ["GPT2_SMALL", "assemble_captioner", "convert_clipcap", "mapper_options_from_state_dict"]

# GPT-2 small (the `gpt2` checkpoint ClipCap fine-tunes or freezes)
GPT2_SMALL = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024,
              "vocab_size": 50257, "bos_token_id": 50256, "eos_token_id": 50256}  # fmt: skip
_GPT2_BUFFERS = (".attn.bias", ".attn.masked_bias")


def mapper_options_from_state_dict(mapper: Mapping[str, torch.Tensor], num_heads: int = 8) -> dict:
    """AltogetherConfig mapper fields read off `clip_project.*` shapes (MLP or transformer layout)."""
    if "model.0.weight" in mapper:
        hidden = mapper["model.2.weight"].shape[0]
        dim = mapper["model.0.weight"].shape[0] * 2
        if hidden != dim:
            raise CheckpointError(f"MLP mapper: first layer {dim // 2} is not half of the output {hidden}")
        return {"mapper_type": "mlp", "_prefix_size": mapper["model.0.weight"].shape[1], "_flat_out": hidden}
    if "linear.weight" in mapper and "prefix_const" in mapper:
        prefix_length, dim = mapper["prefix_const"].shape
        layers = {int(k.split(".")[2]) for k in mapper if k.startswith("transformer.layers.")}
        if not layers or layers != set(range(len(layers))):
            raise CheckpointError(f"transformer mapper: layers are not numbered 0..n-1: {sorted(layers)}")
        if dim % num_heads:
            raise CheckpointError(f"transformer mapper: width {dim} is not divisible by {num_heads} heads")
        return {
            "mapper_type": "transformer",
            "prefix_length": prefix_length,
            "clip_length": mapper["linear.weight"].shape[0] // dim,
            "mapper_num_layers": len(layers),
            "mapper_num_heads": num_heads,
            "mapper_mlp_ratio": mapper["transformer.layers.0.mlp.fc1.weight"].shape[0] / dim,
            "_prefix_size": mapper["linear.weight"].shape[1],
        }
    raise CheckpointError(
        "clip_project: neither ClipCap's MLP layout (model.0/model.2) nor its transformer layout "
        f"(linear, prefix_const, transformer.layers.N); keys: {sorted(mapper)[:8]}"
    )


def _text_config(text_config, lm_state: Mapping[str, torch.Tensor], embed_key: str):
    """The LM config, its vocabulary taken from the checkpoint's embedding rows and tying decided by whether
    the checkpoint's lm_head differs from its embeddings."""
    from transformers import AutoConfig, PreTrainedConfig

    if isinstance(text_config, (str, os.PathLike)):
        text_config = AutoConfig.from_pretrained(text_config)
    elif isinstance(text_config, Mapping):
        values = dict(text_config)
        text_config = AutoConfig.for_model(values.pop("model_type"), **values)
    elif not isinstance(text_config, PreTrainedConfig):
        raise TypeError(f"text_config must be a config, a dict or a name/path, got {type(text_config).__name__}")
    text_config = text_config.__class__.from_dict(text_config.to_dict())
    text_config.vocab_size = lm_state[embed_key].shape[0]
    head = lm_state.get("lm_head.weight")
    text_config.tie_word_embeddings = head is None or torch.equal(head, lm_state[embed_key])
    return text_config


def _load_lm(text_config, lm_state: dict[str, torch.Tensor], what: str):
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    with no_init_weights():
        lm = AutoModelForCausalLM.from_config(text_config)
    if text_config.tie_word_embeddings:
        lm_state.pop("lm_head.weight", None)
    count = load_into(lm, lm_state, what, ignore={"lm_head.weight"} if text_config.tie_word_embeddings else ())
    if text_config.tie_word_embeddings:
        lm.tie_weights()
    return lm.eval(), count


def assemble_captioner(
    mapper_state: Mapping[str, torch.Tensor],
    lm_state: dict[str, torch.Tensor],
    *,
    clip,
    tokenizer,
    text_config,
    embed_key: str,
    prompt_length: int,
    normalize_image_embeds: bool,
    mapper_num_heads: int = 8,
    prefix_length: int | None = None,
    image_processor=None,
    what: str = "checkpoint",
    processor_kwargs: Mapping | None = None,
    **config_kwargs,
):
    """(model, processor, converted parameter count) from a ClipCap-layout mapper, an LM state dict, a CLIP
    (CLIPModel / CLIPVisionModelWithProjection / name or path) and the LM's tokenizer (object or name/path)."""
    from hf_captioners.altogether import AltogetherForConditionalGeneration, AltogetherProcessor
    from hf_captioners.altogether.modeling_altogether import _as_vision_tower

    options = mapper_options_from_state_dict(mapper_state, mapper_num_heads)
    prefix_size = options.pop("_prefix_size")
    flat_out = options.pop("_flat_out", None)
    text_config = _text_config(text_config, lm_state, embed_key)
    lm, lm_count = _load_lm(text_config, lm_state, f"{what} (language model)")
    dim = lm.get_input_embeddings().embedding_dim
    if flat_out is not None:  # the MLP layout only says prefix_length * dim
        if flat_out % dim:
            raise CheckpointError(f"MLP mapper output {flat_out} is not a multiple of the LM width {dim}")
        options["prefix_length"] = flat_out // dim
    if prefix_length is not None and prefix_length != options["prefix_length"]:
        raise CheckpointError(f"prefix_length={prefix_length} but the mapper writes {options['prefix_length']} tokens")

    vision = _as_vision_tower(clip)
    if vision.config.projection_dim != prefix_size:
        raise CheckpointError(
            f"the mapper reads {prefix_size}-d CLIP embeddings but the CLIP given projects to "
            f"{vision.config.projection_dim}-d: pass the CLIP the checkpoint was trained with"
        )
    if image_processor is None:
        image_processor = vision.config.image_size
    processor = AltogetherProcessor.from_backbones(
        image_processor, tokenizer, prefix_length=options["prefix_length"], prompt_length=prompt_length,
        **dict(processor_kwargs or {}),
    )
    model = AltogetherForConditionalGeneration.from_backbones(
        vision, lm, processor=processor, normalize_image_embeds=normalize_image_embeds, **options, **config_kwargs
    )
    mapper_count = load_into(model.mapper, dict(mapper_state), f"{what} (mapper)")
    # rows added past the original vocabulary get no logits (config.lm_vocab_size); a placeholder that fits
    # inside it (OPT's spare rows) must still never be generated
    inside = processor.image_token_id < model.config.lm_vocab_size
    model.generation_config.suppress_tokens = [processor.image_token_id] if inside else None
    model.eval()
    return model, processor, lm_count + mapper_count


def convert_clipcap(
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
    clip,
    tokenizer="gpt2",
    out_dir: str | os.PathLike | None = None,
    text_config=None,
    mapper_num_heads: int = 8,
    prefix_length: int | None = None,
    normalize_prefix: bool = False,
    stop_token: str = ".",
    freeze_text_model: bool = False,
):
    """A ClipCap `.pt` (or its state dict) + the CLIP it was trained with + GPT-2's tokenizer -> (model,
    processor, converted parameter count); saved to `out_dir` when given.

    Decoding defaults are the original's (`predict.py`): `generate2`, i.e. greedy, stopping at the first
    `stop_token` ("."; never at <|endoftext|>) and after at most 67 tokens. Its `generate_beam` is
    `model.generate(**inputs, num_beams=5, custom_generate=model.clipcap_beam_search)`. Captions are trained
    without an end-of-text token, as the original did (`train.py` line 70). `normalize_prefix`: L2-normalise
    CLIP features, as the transformer release was trained (`--normalize_prefix`, `transformer_inference.ipynb`).
    `freeze_text_model`: GPT-2 frozen and in eval mode when training further (`--only_prefix`,
    `ClipCaptionPrefix`), as the transformer release was trained.
    """
    state = load_state_dict(checkpoint) if not isinstance(checkpoint, Mapping) else dict(checkpoint)
    state = unwrap_ddp(state, "ClipCap checkpoint")
    mapper_state = strip_prefix(state, "clip_project.")
    lm_state = {k: v for k, v in strip_prefix(state, "gpt.").items() if not k.endswith(_GPT2_BUFFERS)}
    left = sorted(k for k in state if not k.startswith(("clip_project.", "gpt.")))
    if left:
        raise CheckpointError(f"ClipCap checkpoint: keys outside clip_project.* and gpt.*: {left[:8]}")
    if not mapper_state or not lm_state:
        raise CheckpointError("ClipCap checkpoint: expected clip_project.* (mapper) and gpt.* (GPT-2) keys")
    model, processor, count = assemble_captioner(
        mapper_state, lm_state, clip=clip, tokenizer=tokenizer, text_config=text_config or GPT2_SMALL,
        embed_key="transformer.wte.weight", prompt_length=0, normalize_image_embeds=normalize_prefix,
        mapper_num_heads=mapper_num_heads, prefix_length=prefix_length, what="ClipCap checkpoint",
        processor_kwargs={"append_eos": False}, freeze_text_model=freeze_text_model,
    )  # fmt: skip
    stop_ids = processor.tokenizer.encode(stop_token, add_special_tokens=False)
    if not stop_ids:
        raise ValueError(f"stop_token {stop_token!r} encodes to no token")
    gen = model.generation_config
    gen.do_sample, gen.num_beams, gen.max_new_tokens = False, 1, 67
    gen.eos_token_id = stop_ids[0]  # the original's `tokenizer.encode(stop_token)[0]`
    gen.temperature = gen.top_p = gen.top_k = None
    if out_dir is not None:
        save_converted(model, processor, out_dir)
    return model, processor, count


def save_converted(model, processor, out_dir: str | os.PathLike) -> Path:
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    logger.info("saved %s to %s", type(model).__name__, out_dir)
    return out_dir
