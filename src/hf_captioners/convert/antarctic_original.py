"""The released antarctic-captions checkpoint (a PyTorch Lightning `.ckpt`) + its n-gram cache -> our model.

The Lightning module held OpenAI's CLIP as `perceiver` and a `BartForConditionalGeneration` as `model`, so
`state_dict` has `perceiver.*` keys in OpenAI CLIP's layout (converted like any open_clip ViT) and
`model.*` keys that are BART's own names. CLIP sizes are read off the shapes (OpenAI's 64-wide heads);
BART's off the shapes too, with bart-large's head counts. The cache is the release's `.txt` (one n-gram a
line) + `.npy` (float32 CLIP text embeddings), imported as an `AntarcticCache`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from hf_captioners.convert.checkpoints import CheckpointError, load_into, load_state_dict, strip_prefix

logger = logging.getLogger(__name__)

__all__ = ["ORIGINAL_GENERATION", "bart_config_from_state_dict", "convert_antarctic"]

# What the original sampler's `generate` ran with (sampler.py / utils.py `generate`: num_beams 3, 3 returned;
# everything else came from facebook/bart-large's config.json under transformers 4.9, July 2021): early
# stopping, no repeated trigrams, max_length 20 counting the decoder start token, EOS forced at the last
# position (BartConfig's default forced_eos_token_id=2) and NO forced <s> -- bart-large's config gained
# `forced_bos_token_id: 0` only in March 2022. temperature / top_p were passed but unused by beam search.
ORIGINAL_GENERATION = {
    "num_beams": 3, "num_return_sequences": 3, "do_sample": False, "early_stopping": True, "no_repeat_ngram_size": 3,
    "max_length": 20, "min_length": 0, "length_penalty": 1.0, "forced_bos_token_id": None, "forced_eos_token_id": 2,
}  # fmt: skip

_BART_TIED = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight")


def _count_layers(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    found = {int(k[len(prefix) :].split(".", 1)[0]) for k in state if k.startswith(prefix)}
    if found != set(range(len(found))):
        raise CheckpointError(f"BART layers under {prefix!r} are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def bart_config_from_state_dict(state: Mapping[str, torch.Tensor], base=None):
    """bart-large's config (or `base`) with vocabulary, width, depths, FFN and positions read off the weights."""
    from transformers import BartConfig

    config = BartConfig.from_dict(base.to_dict()) if base is not None else BartConfig(forced_bos_token_id=0)
    try:
        vocab, d_model = state["model.shared.weight"].shape
        config.vocab_size, config.d_model = vocab, d_model
        config.encoder_layers = _count_layers(state, "model.encoder.layers.")
        config.decoder_layers = _count_layers(state, "model.decoder.layers.")
        config.encoder_ffn_dim = state["model.encoder.layers.0.fc1.weight"].shape[0]
        config.decoder_ffn_dim = state["model.decoder.layers.0.fc1.weight"].shape[0]
        config.max_position_embeddings = state["model.encoder.embed_positions.weight"].shape[0] - 2
    except KeyError as error:
        raise CheckpointError(f"not a BartForConditionalGeneration state dict: no {error.args[0]!r}") from error
    return config


def _load_bart(bart_state: dict[str, torch.Tensor], bart_config):
    from transformers import BartForConditionalGeneration
    from transformers.initialization import no_init_weights

    shared = bart_state["model.shared.weight"]
    for key in _BART_TIED:  # old checkpoints store the tied copies; they must really be copies
        if key in bart_state:
            if not torch.equal(bart_state[key], shared):
                raise CheckpointError(f"antarctic checkpoint: model.{key} differs from model.model.shared.weight")
            del bart_state[key]
    with no_init_weights():
        bart = BartForConditionalGeneration(bart_config)
    count = load_into(bart, bart_state, "antarctic checkpoint (BART)", ignore=_BART_TIED)
    bart.tie_weights()
    return bart.eval(), count


def convert_antarctic(
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
    cache_txt: str | os.PathLike | None,
    cache_npy: str | os.PathLike | None,
    bart_tokenizer="facebook/bart-large",
    clip_tokenizer=None,
    out_dir: str | os.PathLike | None = None,
    clip_model_config: Mapping | None = None,
    bart_config=None,
    decoder_layout: str = "original",
    **config_kwargs,
):
    """antarctic `.ckpt` (or its state dict) + release cache -> (model, processor, converted parameter count);
    saved to `out_dir` when given.

    `clip_tokenizer` defaults to open_clip's BPE rebuilt as a transformers tokenizer; `clip_model_config`
    (an open_clip config dict) overrides the CLIP config read off the weights; `bart_config` is the base for
    BART (bart-large by default). `config_kwargs` go to `AntarcticConfig` (table_top_k, ...).

    The converted model decodes as the original sampler did (`ORIGINAL_GENERATION`) and trains further with
    the original's decoder layout (`decoder_layout="original"`, see `AntarcticProcessor`).
    """
    from transformers import AutoTokenizer, GenerationConfig

    from hf_captioners.antarctic import AntarcticCache, AntarcticForConditionalGeneration, AntarcticProcessor
    from hf_captioners.convert.open_clip_to_hf import open_clip_to_hf, openai_clip_image_processor

    state = load_state_dict(checkpoint) if not isinstance(checkpoint, Mapping) else dict(checkpoint)
    clip_state, bart_state = strip_prefix(state, "perceiver."), strip_prefix(state, "model.")
    left = sorted(k for k in state if not k.startswith(("perceiver.", "model.")))
    if left:
        raise CheckpointError(f"antarctic checkpoint: keys outside perceiver.* and model.*: {left[:8]}")
    if not clip_state or not bart_state:
        raise CheckpointError("antarctic checkpoint: expected perceiver.* (CLIP) and model.* (BART) keys")
    # OpenAI's JIT-era state dicts may carry these ints as tensors; they are config, not weights
    for key in ("input_resolution", "context_length", "vocab_size"):
        clip_state.pop(key, None)

    clip = open_clip_to_hf(clip_state, clip_model_config, quick_gelu=True if clip_model_config is None else None)
    bart, bart_count = _load_bart(bart_state, bart_config_from_state_dict(bart_state, bart_config))
    clip_count = sum(p.numel() for p in clip.parameters())

    if isinstance(bart_tokenizer, (str, os.PathLike)):
        bart_tokenizer = AutoTokenizer.from_pretrained(bart_tokenizer)
    if clip_tokenizer is None:
        from hf_captioners.convert.clip_tokenizer import build_clip_tokenizer

        clip_tokenizer = build_clip_tokenizer(context_length=clip.config.text_config.max_position_embeddings)
    elif isinstance(clip_tokenizer, (str, os.PathLike)):
        clip_tokenizer = AutoTokenizer.from_pretrained(clip_tokenizer)
    if len(clip_tokenizer) > clip.config.text_config.vocab_size:
        raise CheckpointError(f"CLIP tokenizer has {len(clip_tokenizer)} tokens, the CLIP text tower only "
                              f"{clip.config.text_config.vocab_size}")  # fmt: skip

    cache = None
    if cache_txt is not None or cache_npy is not None:
        if cache_txt is None or cache_npy is None:
            raise ValueError("the cache needs both files: the .txt of entries and the .npy of embeddings")
        cache = AntarcticCache.from_original(cache_txt, cache_npy)
    model = AntarcticForConditionalGeneration.from_backbones(clip, bart, cache=cache, **config_kwargs)
    config = model.config
    processor = AntarcticProcessor(
        openai_clip_image_processor(clip.config.vision_config.image_size), bart_tokenizer, clip_tokenizer,
        table_separator=config.table_separator, encoder_max_length=config.encoder_max_length,
        decoder_max_length=config.decoder_max_length,
        clip_max_length=clip.config.text_config.max_position_embeddings, decoder_layout=decoder_layout,
    )  # fmt: skip
    bart_ids = {k: getattr(bart.config, k) for k in ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id")}
    model.generation_config = GenerationConfig(**bart_ids, **{**ORIGINAL_GENERATION,
                                               "forced_eos_token_id": bart.config.eos_token_id})  # fmt: skip
    if out_dir is not None:
        out_dir = Path(out_dir)
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
        logger.info("saved antarctic-captions to %s", out_dir)
    return model, processor, clip_count + bart_count
