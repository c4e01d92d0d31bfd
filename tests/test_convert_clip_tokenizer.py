"""The CLIP tokenizer rebuilt from open_clip's bundled BPE file must give open_clip's ids exactly."""

from __future__ import annotations

import pytest
import torch

from hf_captioners.convert import build_clip_tokenizer, clip_byte_symbols

open_clip = pytest.importorskip("open_clip")

PLAIN = [
    "a red circle",
    "A picture showing a LARGE blue star at the top, on a striped background.",
    "two shapes on a dotted background: a gray ring and a cyan cross",
    "IMG_2034.jpg",
    "2019-03-04 photo 1234",
    "  spaced   out\ttext\n ",
    "",
    "don't we'll it's they're I'm you've he'd",
    "!!! ??? ... -- :: |",
    "A1B2C3 x99y",
    "word " * 100,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]
CLEANED = [
    "Foo &amp; friends",
    "&amp;amp;lt; x &lt;b&gt; &quot;q&quot;",
    "He said \u201chello\u201d and \u2018bye\u2019",
    "caf\u00e9 na\u00efve \u6771\u4eac \U0001f600",
    "literal <|endoftext|> and <|startoftext|> in text",
]
CONTEXT = 77


@pytest.fixture(scope="module")
def reference():
    return open_clip.get_tokenizer("ViT-B-32")


@pytest.fixture(scope="module")
def saved_exact(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip_tok")
    build_clip_tokenizer(out_dir=out)
    return out


def _ids(tokenizer, texts, length=CONTEXT):
    return tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt").input_ids


def test_byte_symbols_are_a_bijection_of_bytes():
    symbols = clip_byte_symbols()
    assert len(symbols) == len(set(symbols)) == 256
    assert symbols[0] == "!" and symbols[-1] == chr(256 + 67)


def test_same_ids_as_open_clip_after_reload(reference, saved_exact):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(saved_exact)
    expected = reference(PLAIN + CLEANED)
    got = _ids(tokenizer, PLAIN + CLEANED)
    for text, row, ref in zip(PLAIN + CLEANED, got, expected):
        assert row.tolist() == ref.tolist(), text
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == CONTEXT


def test_start_end_truncation_and_padding(reference, saved_exact):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(saved_exact)
    long_ids = _ids(tokenizer, ["word " * 100])[0]
    assert long_ids[0] == 49406 and long_ids[-1] == 49407 and len(long_ids) == CONTEXT
    short = _ids(tokenizer, ["a red circle"])[0]
    assert short[:5].tolist() == [49406, 320, 736, 7117, 49407] and short[5:].eq(0).all()
    for length in (8, 16):
        assert torch.equal(_ids(tokenizer, PLAIN, length), reference(PLAIN, context_length=length))


def test_decode_matches_open_clip(reference, saved_exact):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(saved_exact)
    text = "a red circle, caf\u00e9 \u6771\u4eac on the left!"
    ids = tokenizer(text).input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == reference.decode(ids[1:-1]).strip()


def test_clip_tokenizer_class_matches_on_plain_text(reference, tmp_path):
    from transformers import CLIPTokenizer

    tokenizer = build_clip_tokenizer(exact=False, out_dir=tmp_path)
    assert isinstance(tokenizer, CLIPTokenizer)
    assert torch.equal(_ids(tokenizer, PLAIN + CLEANED), reference(PLAIN + CLEANED))
    reloaded = CLIPTokenizer.from_pretrained(tmp_path)
    assert torch.equal(_ids(reloaded, PLAIN), reference(PLAIN))


def test_bad_bpe_file_is_named(tmp_path):
    import gzip

    bad = tmp_path / "bpe.txt.gz"
    with gzip.open(bad, "wt") as handle:
        handle.write("#version\na b\n")
    with pytest.raises(ValueError, match="bpe.txt.gz"):
        build_clip_tokenizer(bpe_path=bad)
