"""Original Altogether training checkpoints (`epoch_*.pt` of MetaCLIP's `altogether/`) -> our model.

Layout: `{"state_dict": {...}}` saved from a DistributedDataParallel-wrapped module, so every key starts with
`module.`; the mapper is `clip_project.*` (ClipCap's transformer layout) and the decoder `gpt.*`, an
`OPTForCausalLM` (`gpt.model.decoder.*`, optionally `gpt.lm_head.weight`). The frozen MetaCLIP tower was
never saved: it comes separately, as a transformers CLIP or an open_clip checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from hf_captioners.convert.checkpoints import CheckpointError, load_state_dict, strip_prefix, unwrap_ddp
from hf_captioners.convert.clipcap import assemble_captioner, save_converted

__all__ = ["convert_altogether", "load_clip"]


def load_clip(clip=None, open_clip_checkpoint=None, open_clip_model=None):
    """A CLIP for a converter: a transformers CLIP (model, folder or Hub name) or an open_clip / OpenAI
    checkpoint file converted on the fly (`open_clip_model`: an open_clip name or preset; None = read the
    config off the weights)."""
    if (clip is None) == (open_clip_checkpoint is None):
        raise ValueError("give exactly one CLIP: a transformers CLIP (clip=) or an open_clip checkpoint file")
    if clip is not None:
        return clip
    from hf_captioners.convert.open_clip_to_hf import open_clip_model_config, open_clip_to_hf

    state = load_state_dict(open_clip_checkpoint)
    state = unwrap_ddp(state, "open_clip checkpoint")
    config = open_clip_model_config(open_clip_model) if isinstance(open_clip_model, str) else open_clip_model
    return open_clip_to_hf(state, config)


def convert_altogether(
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
    clip,
    tokenizer="facebook/opt-1.3b",
    out_dir: str | os.PathLike | None = None,
    text_config=None,
    prompt_length: int = 128,
    mapper_num_heads: int = 8,
    caption_length: int = 192,
    raw_text: bool = True,
):
    """An Altogether `epoch_*.pt` (or its state dict) + the MetaCLIP it was trained on (see `load_clip`) + OPT's
    tokenizer -> (model, processor, converted parameter count); saved to `out_dir` when given.

    `text_config` defaults to facebook/opt-1.3b's; the vocabulary size is read off the checkpoint. Inference
    follows `infer.py`: alt-texts (and training captions) as given (`raw_text`; no HTML handling), "; "-joined, `prompt_length`
    tokens, sampling at temperature 0.2 / top-p 0.7 for `caption_length` (= max_seq_len 320 - 128) tokens.
    """
    from hf_captioners.altogether.configuration_altogether import OPT_1_3B

    state = load_state_dict(checkpoint) if not isinstance(checkpoint, Mapping) else dict(checkpoint)
    if isinstance(checkpoint, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = dict(state["state_dict"])
    state = unwrap_ddp(state, "Altogether checkpoint")
    mapper_state = strip_prefix(state, "clip_project.")
    lm_state = strip_prefix(state, "gpt.")
    left = sorted(k for k in state if not k.startswith(("clip_project.", "gpt.")))
    if left:
        raise CheckpointError(f"Altogether checkpoint: keys outside clip_project.* and gpt.*: {left[:8]}")
    if "model.decoder.embed_tokens.weight" not in lm_state or not mapper_state:
        raise CheckpointError(
            "Altogether checkpoint: expected gpt.model.decoder.* (OPT) and clip_project.* (mapper) keys"
        )
    model, processor, count = assemble_captioner(
        mapper_state, lm_state, clip=clip, tokenizer=tokenizer,
        text_config=text_config or {"model_type": "opt", **OPT_1_3B},
        embed_key="model.decoder.embed_tokens.weight", prompt_length=prompt_length, normalize_image_embeds=True,
        mapper_num_heads=mapper_num_heads, what="Altogether checkpoint",
        processor_kwargs={"raw_text": raw_text, "max_length": prompt_length + caption_length},
    )  # fmt: skip
    model.generation_config.max_new_tokens = caption_length
    if out_dir is not None:
        save_converted(model, processor, out_dir)
    return model, processor, count
