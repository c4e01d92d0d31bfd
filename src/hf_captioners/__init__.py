"""hf-captioners: Altogether and antarctic-captions as Transformers-native captioners.

Names are imported on first use, so `import hf_captioners` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "cider_d": "hf_captioners.metrics",
    "ptb_tokenize": "hf_captioners.metrics",
    "load_eval_set": "hf_captioners.evaluation.runner",
    "run_evaluation": "hf_captioners.evaluation.runner",
    "ToyWorldConfig": "hf_captioners.toyworld",
    "generate_toyworld": "hf_captioners.toyworld",
    "load_hf_split": "hf_captioners.toyworld",
    "load_rgb_image": "hf_captioners.altogether.image_utils",
    "ImageInputError": "hf_captioners.altogether.image_utils",
    "pretrain_backbones": "hf_captioners.toyworld.backbones",
    "pretrain_clip": "hf_captioners.toyworld.backbones",
    "pretrain_causal_lm": "hf_captioners.toyworld.backbones",
    "pretrain_bart": "hf_captioners.toyworld.backbones",
    "train_bpe_tokenizer": "hf_captioners.toyworld.backbones",
    "build_clip_tokenizer": "hf_captioners.convert",
    "AntarcticCache": "hf_captioners.antarctic",
    "AntarcticConfig": "hf_captioners.antarctic",
    "AntarcticForConditionalGeneration": "hf_captioners.antarctic",
    "AntarcticProcessor": "hf_captioners.antarctic",
    "build_ngram_entries": "hf_captioners.antarctic",
    "wrap_for_ln_tuning": "hf_captioners.training.ln_tuning",
    "merge_ln_tuning": "hf_captioners.training.ln_tuning",
    "tell_story": "hf_captioners.stories",
    "tell_stories": "hf_captioners.stories",
    "AltogetherConfig": "hf_captioners.altogether",
    "AltogetherForConditionalGeneration": "hf_captioners.altogether",
    "AltogetherProcessor": "hf_captioners.altogether",
    "push_to_hub": "hf_captioners.hub.push",
    "render_model_card": "hf_captioners.hub.cards",
    "convert_open_clip": "hf_captioners.convert.open_clip_to_hf",
    "convert_clipcap": "hf_captioners.convert.clipcap",
    "convert_altogether": "hf_captioners.convert.altogether_original",
    "convert_antarctic": "hf_captioners.convert.antarctic_original",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hf_captioners' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
