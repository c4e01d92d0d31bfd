"""Tiny causal LM pretraining on the tiny toy world: it learns, saves, reloads to the same logits."""

from __future__ import annotations

import math

import pytest
import torch

from hf_captioners.toyworld.backbones.causal_lm import causal_lm_perplexity, pretrain_causal_lm


@pytest.fixture(scope="module")
def trained(tiny_toyworld, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    metrics = pretrain_causal_lm(
        tiny_toyworld, out, config={"hidden": 32, "layers": 1}, steps=40, batch_size=16, lr=5e-3, vocab_size=400,
        progress=False, threads=1,
    )
    return out, metrics


def test_loss_falls_and_perplexity_is_reported(trained):
    _, metrics = trained
    assert metrics["loss_end"] < metrics["loss_start"] - 1.0
    assert 1.0 < metrics["eval_perplexity"] < metrics["vocab_size"]
    assert metrics["train_texts"] > 96


def test_reload_with_auto_classes_gives_same_logits_and_generates(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, metrics = trained
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id is not None
    batch = tokenizer(["A picture showing a red circle", "Brailou"], padding=True, return_tensors="pt")
    again = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, again(**batch).logits)
    generated = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert generated.shape[0] == 2 and generated.shape[1] <= batch["input_ids"].shape[1] + 5
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


def test_perplexity_is_exp_of_mean_token_loss(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = trained
    model, tokenizer = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    text = "a red circle on a striped background"
    ids = torch.tensor([[tokenizer.eos_token_id, *tokenizer(text).input_ids, tokenizer.eos_token_id]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert causal_lm_perplexity(model, tokenizer, [text]) == pytest.approx(math.exp(loss), rel=1e-4)
