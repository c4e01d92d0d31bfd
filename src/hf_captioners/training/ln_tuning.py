"""LayerNorm tuning of antarctic-captions with PEFT (training only; shipped models are merged, peft-free).

The release trained every BART parameter whose name holds both `layer_norm` and `encoder`: the encoder's
self-attention and final LayerNorms AND the decoder's cross-attention (`encoder_attn_layer_norm`) ones, but not
`layernorm_embedding` - 73,728 parameters on bart-large. PEFT's `LNTuningConfig` trains copies of exactly those
modules, so the frozen base stays untouched until `merge_and_unload`.
"""

from __future__ import annotations

import logging

from peft import LNTuningConfig, PeftModel, get_peft_model

logger = logging.getLogger(__name__)

__all__ = ["LN_TARGETS", "ln_tuning_config", "merge_ln_tuning", "wrap_for_ln_tuning"]

# Regexes over module names *inside BART* (prefix added below); PEFT full-matches them.
LN_TARGETS = {
    "faithful": r"(model\.encoder\.layers\.\d+\.(self_attn_layer_norm|final_layer_norm)"
    r"|model\.decoder\.layers\.\d+\.encoder_attn_layer_norm)",
    "encoder_only": r"model\.encoder\.layers\.\d+\.(self_attn_layer_norm|final_layer_norm)",
}


def ln_tuning_config(target: str = "faithful", bart_prefix: str = "bart.") -> LNTuningConfig:
    """`bart_prefix` is where BART sits: "bart." in the captioner, "" for a bare BartForConditionalGeneration."""
    if target not in LN_TARGETS:
        raise ValueError(f"ln_tuning_config: unknown target {target!r}; choose from {sorted(LN_TARGETS)}")
    return LNTuningConfig(target_modules=f"{bart_prefix.replace('.', chr(92) + '.')}{LN_TARGETS[target]}")


def wrap_for_ln_tuning(model, target: str = "faithful", bart_prefix: str = "bart.") -> PeftModel:
    """Freeze everything, then make only the target LayerNorms trainable (as PEFT adapters)."""
    peft_model = get_peft_model(model, ln_tuning_config(target, bart_prefix))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    logger.info("LN tuning (%s): %d trainable parameters", target, trainable)
    return peft_model


def merge_ln_tuning(peft_model: PeftModel):
    """Fold the tuned LayerNorms into the base model and drop PEFT: what gets saved and shipped."""
    model = peft_model.merge_and_unload()
    if hasattr(model, "freeze"):
        model.freeze()
    return model
