"""open_clip / OpenAI CLIP ViT weights -> transformers `CLIPModel`, plus the matching image processor and tokenizer.

OpenAI's released CLIP and open_clip's `CLIP` share one state-dict layout (`visual.*`, `transformer.*`,
`token_embedding`, ...), so one mapping serves both, and antarctic's `perceiver.*` too. What differs from
transformers' CLIP is naming plus three shapes: the fused `in_proj` of `nn.MultiheadAttention` is split into
q/k/v, and the two projections are stored as (width, embed) matrices applied as `x @ proj`, i.e. transposed
`nn.Linear` weights. open_clip pools text at the argmax token id; transformers pools at the first
`eos_token_id`, which is the same position as long as eos is the highest id (49407 in CLIP's vocabulary).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from hf_captioners.convert.checkpoints import CheckpointError

logger = logging.getLogger(__name__)

__all__ = [
    "OPEN_CLIP_PRESETS",
    "clip_config_from_open_clip",
    "convert_open_clip",
    "convert_open_clip_state_dict",
    "open_clip_config_from_state_dict",
    "open_clip_model_config",
    "openai_clip_image_processor",
    "state_dict_to_clip_model",
]

# preset -> (open_clip model name, quick_gelu override). OpenAI's weights were trained with QuickGELU although
# open_clip's "ViT-B-16" config leaves it off (open_clip switches it on when loading pretrained="openai").
OPEN_CLIP_PRESETS = {
    "metaclip-h14-quickgelu": ("ViT-H-14-quickgelu", None),
    "openai-vit-b-16": ("ViT-B-16", True),
    "openai-vit-b-32": ("ViT-B-32", True),
}

# config fields whose non-default values change the computation in ways transformers' CLIP cannot express
_VISION_DEFAULTS = {
    "ls_init_value": None, "attentional_pool": False, "no_ln_pre": False, "pos_embed_type": "learnable",
    "final_ln_after_pool": False, "pool_type": "tok", "act_kwargs": None, "norm_kwargs": None, "block_type": None,
    "qk_norm": False, "scaled_cosine_attn": False, "scale_heads": False, "scale_attn_inner": False,
    "scale_attn": False, "scale_fc": False, "timm_model_name": None,
}  # fmt: skip
_TEXT_DEFAULTS = {
    "ls_init_value": None, "embed_cls": False, "no_causal_mask": False, "final_ln_after_pool": False,
    "pool_type": "argmax", "proj_bias": False, "proj_type": "linear", "act_kwargs": None, "norm_kwargs": None,
    "block_type": None, "qk_norm": False, "scaled_cosine_attn": False, "scale_heads": False,
    "scale_attn_inner": False, "scale_attn": False, "scale_fc": False, "hf_model_name": None,
}  # fmt: skip
_UNSUPPORTED_TOP = ("init_logit_bias", "multimodal_cfg", "nonscalar_logit_scale")


def _square(value, name: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"{name}={value}: only square images/patches map to transformers' CLIP")
        value = value[0]
    return int(value)


def open_clip_model_config(name: str) -> dict:
    """open_clip's bundled config dict for a model name (e.g. "ViT-H-14-quickgelu") or a preset name
    (`OPEN_CLIP_PRESETS`); no download."""
    import open_clip

    model_name, quick_gelu = OPEN_CLIP_PRESETS.get(name, (name, None))
    config = open_clip.get_model_config(model_name)
    if config is None:
        raise ValueError(f"open_clip has no model config named {model_name!r}")
    config = {**config, "vision_cfg": dict(config["vision_cfg"]), "text_cfg": dict(config["text_cfg"])}
    if quick_gelu is not None:
        config["quick_gelu"] = quick_gelu
    return config


def clip_config_from_open_clip(model_cfg: Mapping, quick_gelu: bool | None = None, logit_scale: float | None = None):
    """An open_clip model config dict (`embed_dim`, `vision_cfg`, `text_cfg`, `quick_gelu`) -> `CLIPConfig`.

    Raises on options transformers' CLIP has no equivalent for (layer scale, attention pooling, SigLIP bias,
    timm / HF text towers, ...), instead of producing a model that silently computes something else.
    """
    from transformers import CLIPConfig

    bad = [key for key in _UNSUPPORTED_TOP if model_cfg.get(key)]
    vision, text = dict(model_cfg["vision_cfg"]), dict(model_cfg["text_cfg"])
    bad += [f"vision_cfg.{k}={vision[k]!r}" for k, default in _VISION_DEFAULTS.items() if vision.get(k, default) != default]
    bad += [f"text_cfg.{k}={text[k]!r}" for k, default in _TEXT_DEFAULTS.items() if text.get(k, default) != default]
    if isinstance(vision.get("layers", 12), (list, tuple)):
        bad.append("vision_cfg.layers is a list (a ResNet tower)")
    if bad:
        raise ValueError(f"open_clip config not expressible as a transformers CLIP: {', '.join(map(str, bad))}")
    quick = model_cfg.get("quick_gelu", False) if quick_gelu is None else quick_gelu
    act = "quick_gelu" if quick else "gelu"
    v_width, t_width = int(vision.get("width", 768)), int(text.get("width", 512))
    head_width = int(vision.get("head_width", 64))
    if v_width % head_width:
        raise ValueError(f"vision width {v_width} is not a multiple of head_width {head_width}")
    vocab = int(text.get("vocab_size", 49408))
    vision_config = {
        "hidden_size": v_width,
        "intermediate_size": int(v_width * vision.get("mlp_ratio", 4.0)),
        "num_hidden_layers": int(vision.get("layers", 12)),
        "num_attention_heads": v_width // head_width,
        "image_size": _square(vision.get("image_size", 224), "image_size"),
        "patch_size": _square(vision.get("patch_size", 16), "patch_size"),
        "hidden_act": act,
        "layer_norm_eps": 1e-5,
    }
    text_config = {
        "vocab_size": vocab,
        "hidden_size": t_width,
        "intermediate_size": int(t_width * text.get("mlp_ratio", 4.0)),
        "num_hidden_layers": int(text.get("layers", 12)),
        "num_attention_heads": int(text.get("heads", 8)),
        "max_position_embeddings": int(text.get("context_length", 77)),
        "hidden_act": act,
        "layer_norm_eps": 1e-5,
        # argmax pooling == first eos when eos is the top id; open_clip pads with 0
        "bos_token_id": vocab - 2,
        "eos_token_id": vocab - 1,
        "pad_token_id": 0,
    }
    kwargs = {"logit_scale_init_value": logit_scale} if logit_scale is not None else {}
    return CLIPConfig(
        text_config=text_config, vision_config=vision_config, projection_dim=int(model_cfg["embed_dim"]), **kwargs
    )


def _layer_indices(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    found = {int(k[len(prefix) :].split(".", 1)[0]) for k in state if k.startswith(prefix)}
    if found != set(range(len(found))):
        raise CheckpointError(f"layers under {prefix!r} are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def _canonical_layout(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip's `custom_text` layout keeps the text tower under `text.`: move it to the top level."""
    out = {}
    for key, value in state.items():
        out[key[len("text.") :] if key.startswith("text.") else key] = value
    return out


def open_clip_config_from_state_dict(
    state: Mapping[str, torch.Tensor], vision_head_width: int = 64, text_head_width: int = 64, quick_gelu: bool = True
) -> dict:
    """Read an open_clip model config off an OpenAI-layout state dict, as OpenAI's `build_model` does: the
    shapes give widths, depths, patch and image size; head counts follow OpenAI's 64-wide heads unless told."""
    state = _canonical_layout(state)
    try:
        conv = state["visual.conv1.weight"]
        width = conv.shape[0]
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        t_width = state["ln_final.weight"].shape[0]
        vision_cfg = {
            "layers": _layer_indices(state, "visual.transformer.resblocks."),
            "width": width,
            "head_width": vision_head_width,
            "patch_size": conv.shape[-1],
            "image_size": conv.shape[-1] * grid,
            "mlp_ratio": state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
        }
        text_cfg = {
            "context_length": state["positional_embedding"].shape[0],
            "vocab_size": state["token_embedding.weight"].shape[0],
            "width": t_width,
            "heads": t_width // text_head_width,
            "layers": _layer_indices(state, "transformer.resblocks."),
            "mlp_ratio": state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / t_width,
        }
        embed_dim = state["text_projection"].shape[1]
    except KeyError as error:
        raise CheckpointError(f"not an OpenAI/open_clip ViT CLIP state dict: no {error.args[0]!r}") from error
    return {"embed_dim": embed_dim, "quick_gelu": quick_gelu, "vision_cfg": vision_cfg, "text_cfg": text_cfg}


def _blocks(state, src: str, dst: str, layers: int, out: dict, used: set) -> None:
    for i in range(layers):
        s, d = f"{src}{i}.", f"{dst}{i}."
        weight, bias = state[s + "attn.in_proj_weight"], state[s + "attn.in_proj_bias"]
        for name, w, b in zip(("q", "k", "v"), weight.chunk(3), bias.chunk(3)):
            out[f"{d}self_attn.{name}_proj.weight"] = w.clone()
            out[f"{d}self_attn.{name}_proj.bias"] = b.clone()
        pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                 "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}  # fmt: skip
        for a, b in pairs.items():
            for p in ("weight", "bias"):
                out[f"{d}{b}.{p}"] = state[f"{s}{a}.{p}"]
        used.update(k for k in state if k.startswith(s))


def convert_open_clip_state_dict(state: Mapping[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """OpenAI/open_clip CLIP state dict -> transformers `CLIPModel` state dict for `config` (a CLIPConfig).
    Every source tensor must be used (the causal `attn_mask` buffer aside)."""
    state = _canonical_layout(state)
    out: dict[str, torch.Tensor] = {}
    used = {"attn_mask", "visual.attn_mask"}
    try:
        direct = {
            "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
            "visual.class_embedding": "vision_model.embeddings.class_embedding",
            "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
            "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
            "positional_embedding": "text_model.embeddings.position_embedding.weight",
            "logit_scale": "logit_scale",
        }
        for p in ("weight", "bias"):
            direct[f"visual.ln_pre.{p}"] = f"vision_model.pre_layrnorm.{p}"
            direct[f"visual.ln_post.{p}"] = f"vision_model.post_layernorm.{p}"
            direct[f"ln_final.{p}"] = f"text_model.final_layer_norm.{p}"
        for a, b in direct.items():
            out[b] = state[a]
        out["logit_scale"] = state["logit_scale"].reshape(())
        out["visual_projection.weight"] = state["visual.proj"].t().contiguous()
        out["text_projection.weight"] = state["text_projection"].t().contiguous()
        used.update(direct, {"visual.proj", "text_projection"})
        _blocks(state, "visual.transformer.resblocks.", "vision_model.encoder.layers.",
                config.vision_config.num_hidden_layers, out, used)
        _blocks(state, "transformer.resblocks.", "text_model.encoder.layers.",
                config.text_config.num_hidden_layers, out, used)  # fmt: skip
    except KeyError as error:
        raise CheckpointError(f"open_clip CLIP state dict: missing {error.args[0]!r}") from error
    left = sorted(set(state) - used)
    if left:
        raise CheckpointError(f"open_clip CLIP state dict: {len(left)} tensors have no place in transformers' CLIP: {left[:8]}")
    return out


def state_dict_to_clip_model(hf_state: Mapping[str, torch.Tensor], config, dtype: torch.dtype | None = None):
    """A `CLIPModel` holding exactly `hf_state` (allocated without a random init, then checked key by key)."""
    from transformers import CLIPModel
    from transformers.initialization import no_init_weights

    with no_init_weights():
        model = CLIPModel(config)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(hf_state)), sorted(set(hf_state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"CLIP conversion: missing {missing[:6]}, unexpected {unexpected[:6]}")
    for key, value in hf_state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"CLIP conversion: {key} is {tuple(value.shape)}, expected {tuple(expected[key].shape)}")
    model.load_state_dict(hf_state, strict=True)
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


def open_clip_to_hf(model_or_state, model_cfg: Mapping | None = None, quick_gelu: bool | None = None):
    """An open_clip `CLIP` module (or its state dict plus config) -> transformers `CLIPModel`.
    Without `model_cfg` the config is read off the state dict's shapes (64-wide heads)."""
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else dict(model_or_state)
    state = {k: v.detach().cpu() for k, v in state.items()}
    if any(k.startswith(("visual.attnpool.", "visual.layer1.", "visual.trunk.")) for k in state):
        raise CheckpointError(
            "this CLIP's image tower is not a ViT but a ResNet (e.g. RN50x4, the CLIP of ClipCap's transformer "
            "release) or a timm trunk, and transformers' CLIP vision tower holds ViTs only: such a release does not "
            "convert here (ClipCap's COCO and Conceptual Captions releases use ViT-B/32 and do; see the README)"
        )
    if model_cfg is None:
        model_cfg = open_clip_config_from_state_dict(state, quick_gelu=True if quick_gelu is None else quick_gelu)
    logit_scale = float(state["logit_scale"].float().reshape(())) if "logit_scale" in state else None
    config = clip_config_from_open_clip(model_cfg, quick_gelu=quick_gelu, logit_scale=logit_scale)
    return state_dict_to_clip_model(convert_open_clip_state_dict(state, config), config)


def openai_clip_image_processor(image_size: int = 224, mean=None, std=None):
    """CLIP's eval transform (bicubic resize of the short side, centre crop, CLIP mean/std), the project's one
    builder of it, for converted and toy CLIP folders alike (they load without remote code): transformers' own
    PIL-backend CLIP processor, whose centre crop is a pixel off torchvision's for some sizes. The captioners'
    processors turn it into their torchvision-exact `AltogetherImageProcessor` / `AntarcticImageProcessor`."""
    from transformers import CLIPImageProcessorPil
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    return CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                                 image_mean=list(mean or OPENAI_CLIP_MEAN), image_std=list(std or OPENAI_CLIP_STD))  # fmt: skip


def convert_open_clip(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: str | Mapping | None = None,
    quick_gelu: bool | None = None,
    with_tokenizer: bool = True,
    dtype: torch.dtype | None = None,
):
    """An open_clip / OpenAI CLIP checkpoint file -> a transformers CLIP folder (model + CLIPProcessor-style
    image processor + tokenizer built from open_clip's BPE). `model`: an open_clip model name, a preset, a
    config dict, or None to read the config off the weights. Returns (CLIPModel, converted parameter count)."""
    from hf_captioners.convert.checkpoints import load_state_dict, unwrap_ddp

    state = unwrap_ddp(load_state_dict(checkpoint), "open_clip checkpoint")
    model_cfg = open_clip_model_config(model) if isinstance(model, str) else model
    clip = open_clip_to_hf(state, model_cfg, quick_gelu=quick_gelu)
    if dtype is not None:
        clip = clip.to(dtype)
    out_dir = Path(out_dir)
    clip.save_pretrained(out_dir)
    openai_clip_image_processor(clip.config.vision_config.image_size).save_pretrained(out_dir)
    if with_tokenizer:
        from hf_captioners.convert.clip_tokenizer import build_clip_tokenizer

        if clip.config.text_config.vocab_size != 49408:
            logger.warning("text vocabulary is %d, not CLIP's 49,408: no tokenizer written", clip.config.text_config.vocab_size)
        else:
            build_clip_tokenizer(context_length=clip.config.text_config.max_position_embeddings, out_dir=out_dir)
    return clip, sum(p.numel() for p in clip.parameters())
