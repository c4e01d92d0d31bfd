"""Byte-level BPE tokenizers for the toy LM and BART: special tokens, padding side, save/reload."""

from __future__ import annotations

import pytest

from hf_captioners.toyworld.backbones.tokenizers import train_bpe_tokenizer

TEXTS = [f"a {c} {s} on a striped background" for c in ("red", "blue", "gray") for s in ("circle", "star")] * 5
TEXTS += ["A picture of Brailou showing a small red circle at the top, on a dotted background."] * 3


def test_bart_kind_adds_bos_eos_like_bart_large(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = train_bpe_tokenizer(TEXTS, 400, out_dir=tmp_path, kind="bart")
    assert [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [0, 1, 2, 3]
    assert tokenizer.mask_token == "<mask>"
    ids = tokenizer("a red circle").input_ids
    assert ids[0] == 0 and ids[-1] == 2
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a red circle"
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("a red circle <mask> Zorblax").input_ids == tokenizer("a red circle <mask> Zorblax").input_ids


def test_gpt2_kind_pads_left_and_survives_reload(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = train_bpe_tokenizer(TEXTS, 400, out_dir=tmp_path, kind="gpt2")
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for tok in (tokenizer, reloaded):
        assert tok.padding_side == "left"
        assert tok.pad_token == "<pad>" and tok.eos_token == "<|endoftext|>" and tok.pad_token_id != tok.eos_token_id
        batch = tok(["a red circle", "a picture of Qwertyuiop"], padding=True)
        assert batch["input_ids"][0][0] == tok.pad_token_id and batch["attention_mask"][0][0] == 0
    unseen = "Zorblax &amp; \u00e9t\u00e9 \U0001f600"
    assert tokenizer.decode(tokenizer(unseen).input_ids) == unseen


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="kind"):
        train_bpe_tokenizer(TEXTS, 400, kind="t5")
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe_tokenizer(TEXTS, 100)


def test_prefix_space_gives_a_leading_name_the_tokens_it_has_inside_a_caption(tmp_path):
    from transformers import AutoTokenizer

    plain = train_bpe_tokenizer(TEXTS, 400, kind="gpt2")
    assert plain("Brailou red circle").input_ids[0] != plain(" Brailou red circle").input_ids[0]
    spaced = train_bpe_tokenizer(TEXTS, 400, out_dir=tmp_path, kind="gpt2", add_prefix_space=True)
    alt = spaced("Brailou red circle", add_special_tokens=False).input_ids
    caption = spaced("A picture of Brailou showing", add_special_tokens=False).input_ids
    name = alt[: len(alt) - 2]
    assert any(caption[i:i + len(name)] == name for i in range(len(caption)))  # the same tokens in both places
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("Brailou red circle", add_special_tokens=False).input_ids == alt
    assert reloaded.decode(alt).strip() == "Brailou red circle"
    with pytest.raises(ValueError, match="gpt2"):
        train_bpe_tokenizer(TEXTS, 400, kind="bart", add_prefix_space=True)
