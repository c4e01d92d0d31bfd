"""The one weight-decay rule every optimizer of the project is built with (`training.loop.weight_decay_groups`)."""

from __future__ import annotations

import pytest


def _names(model, group):
    ids = {id(p) for p in group["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("kind", ["gpt2", "opt"])
def test_matrices_decay_and_gains_biases_and_the_prefix_constant_do_not(kind):
    """As the papers' recipes state it (Altogether: weight decay 0.2, none on biases and norms; MetaCLIP /
    open_clip `main.py`: `exclude = p.ndim < 2 or bn/ln/bias/logit_scale`), plus ClipCap's learned constants."""
    from hf_captioners.toyworld.tiny_altogether import tiny_altogether
    from hf_captioners.training.loop import weight_decay_groups

    model, _ = tiny_altogether(kind)
    decay, no_decay = weight_decay_groups(model, 0.2)
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert _names(model, decay) | _names(model, no_decay) == set(trainable)
    assert _names(model, no_decay) == {n for n, p in trainable.items() if p.ndim < 2 or "prefix_const" in n}
    assert any("prefix_const" in n for n in _names(model, no_decay))


def test_decay_all_and_the_toy_recipes_use_the_same_rule():
    from transformers import BartForConditionalGeneration

    from hf_captioners.toyworld.backbones.bart import tiny_bart_config
    from hf_captioners.training.loop import weight_decay_groups

    model = BartForConditionalGeneration(tiny_bart_config(300))
    (only,) = weight_decay_groups(model, 0.01, decay_all=True)
    assert len(only["params"]) == sum(p.requires_grad for p in model.parameters())
    decay, no_decay = weight_decay_groups(model, 0.01)
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        weight_decay_groups(model, 0.01)
