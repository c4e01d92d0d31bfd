"""LayerNorm tuning with PEFT (the release's 73,728 parameters) and caption stories."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image
from transformers import BartConfig, CLIPConfig

from hf_captioners.antarctic import (
    AntarcticConfig,
    AntarcticForConditionalGeneration,
    AntarcticRetriever,  # noqa: E402
)
from hf_captioners.training.ln_tuning import merge_ln_tuning, wrap_for_ln_tuning

BART_LARGE = dict(vocab_size=50265, d_model=1024, encoder_layers=12, decoder_layers=12, encoder_ffn_dim=4096,
                  decoder_ffn_dim=4096, encoder_attention_heads=16, decoder_attention_heads=16,
                  max_position_embeddings=1024)
TINY_CLIP = CLIPConfig(
    text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2),
    vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                       image_size=32, patch_size=16),
    projection_dim=8,
)


def meta_captioner():
    with torch.device("meta"):
        return AntarcticForConditionalGeneration(AntarcticConfig(clip_config=TINY_CLIP, bart_config=BartConfig(**BART_LARGE)))


def test_faithful_target_is_the_releases_73728_parameters_on_bart_large():
    model = meta_captioner()
    by_name_rule = sum(p.numel() for n, p in model.bart.named_parameters() if "layer_norm" in n and "encoder" in n)
    assert by_name_rule == 73_728
    peft_model = wrap_for_ln_tuning(model, "faithful")
    trainable = {n: p.numel() for n, p in peft_model.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == 73_728
    assert any("decoder.layers.11.encoder_attn_layer_norm" in n for n in trainable)
    assert not any("layernorm_embedding" in n or ".clip." in n for n in trainable)


def test_encoder_only_target():
    peft_model = wrap_for_ln_tuning(meta_captioner(), "encoder_only")
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert sum(p.numel() for p in peft_model.parameters() if p.requires_grad) == 24 * 2 * 1024
    assert all(".encoder.layers." in n for n in trainable)
    with pytest.raises(ValueError, match="unknown target"):
        wrap_for_ln_tuning(meta_captioner(), "everything")


def test_an_optimizer_step_changes_only_the_target_layernorms_and_merging_ships_them():
    from hf_captioners.toyworld import ToyWorldConfig, generate_example
    from hf_captioners.toyworld.tiny_antarctic import tiny_antarctic

    model, processor, texts = tiny_antarctic(texts=None)
    from hf_captioners.antarctic import AntarcticCache

    model.set_cache(AntarcticCache.from_corpus(texts, AntarcticRetriever(None, model.clip, processor).encode, 30, 10,
                                               progress=False))
    images = [Image.open(io.BytesIO(generate_example(ToyWorldConfig(), "train", i).image_bytes)) for i in range(4)]
    retriever = AntarcticRetriever.from_model(model, processor)
    tables = retriever.retrieve(model.get_image_features(processor(images=images)["pixel_values"]))[1]
    batch = processor(tables=tables, text_target=texts[:4])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    peft_model = wrap_for_ln_tuning(model, "faithful")
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    loss = peft_model(**batch).loss
    loss.backward()
    optimizer.step()
    merged = merge_ln_tuning(peft_model).eval()

    after = dict(merged.named_parameters())
    assert set(after) == set(before)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    expected = {n for n in before if n.startswith("bart.") and "layer_norm" in n and "encoder" in n}
    assert changed == expected and len(expected) == 6  # 1+1 layers: 2 encoder LNs + 1 cross-attn LN, weight+bias
    assert not any(p.requires_grad for p in merged.parameters())
    assert type(merged) is AntarcticForConditionalGeneration


def test_tell_story_with_any_causal_lm(tmp_path):
    from transformers import BartTokenizer, GPT2Config, GPT2LMHeadModel

    from hf_captioners.stories import tell_stories, tell_story

    tokenizer = BartTokenizer().train_new_from_iterator(["once upon a time there was a red circle"] * 5, vocab_size=300)
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=64)).eval()
    story = tell_story("a red circle", lm, tokenizer, max_new_tokens=5)
    assert story.startswith("Once upon a time there was a red circle")
    custom = tell_stories(["a dog", "two long cats"], lm, tokenizer, prompt_template="Yesterday I saw {caption}",
                          max_new_tokens=3)
    assert custom[0].startswith("Yesterday I saw a dog") and custom[1].startswith("Yesterday I saw two long cats")
    with pytest.raises(ValueError, match="must contain"):
        tell_story("a dog", lm, tokenizer, prompt_template="no slot")
    with pytest.raises(ValueError, match="empty caption"):
        tell_story("  ", lm, tokenizer)

    lm.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    from hf_captioners.commands import main

    assert main(["stories", "--lm", str(tmp_path / "lm"), "--caption", "a red circle", "--caption", "a star",
                 "--max-new-tokens", "3"]) == 0
