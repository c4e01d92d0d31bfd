"""AltogetherProcessor: the original token layout, alt-text handling, open_clip parity, bad input."""

from __future__ import annotations

import copy
import io
import logging
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from hf_captioners.altogether import AltogetherProcessor, join_alt_texts
from hf_captioners.altogether.image_utils import ImageInputError
from hf_captioners.toyworld.tiny_altogether import tiny_altogether, tiny_tokenizer

PREFIX, PROMPT = 4, 16


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def processor(tokenizer):
    return AltogetherProcessor.from_backbones(32, copy.deepcopy(tokenizer), prefix_length=PREFIX, prompt_length=PROMPT)


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    return tiny_altogether("opt", tokenizer=copy.deepcopy(tokenizer))


def _image(seed=0, size=(48, 36), channels=3):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8))


def test_training_layout_matches_the_original(processor):
    tok = processor.tokenizer
    captions = ["a red square on the left.", "blue"]
    batch = processor(images=[_image(0), _image(1)], alt_text=["red square", None], captions=captions)
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    assert ids.shape == mask.shape == labels.shape and batch["pixel_values"].shape == (2, 3, 32, 32)
    for row in range(2):
        assert ids[row, :PREFIX].tolist() == [processor.image_token_id] * PREFIX
        alt = tok("red square", add_special_tokens=False)["input_ids"] if row == 0 else []
        prompt = ids[row, PREFIX : PREFIX + PROMPT].tolist()
        assert prompt == [tok.pad_token_id] * (PROMPT - len(alt)) + alt  # left-padded
        target = tok(captions[row], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        end = PREFIX + PROMPT + len(target)
        assert ids[row, PREFIX + PROMPT : end].tolist() == target
        assert labels[row, PREFIX + PROMPT : end].tolist() == target
        assert (labels[row, : PREFIX + PROMPT] == -100).all() and (labels[row, end:] == -100).all()
        # prompt pads are attended (as the original); only the right padding is masked
        assert mask[row, :end].tolist() == [1] * end and (mask[row, end:] == 0).all()
        assert (ids[row, end:] == tok.pad_token_id).all()
    assert processor.image_token_id not in labels.tolist()


def test_inference_inputs_have_one_length_so_batches_need_no_padding(processor):
    batch = processor(images=[_image(0), _image(1), _image(2)], alt_text=["x" * 500, "", ["a", "b"]])
    assert batch["input_ids"].shape == (3, PREFIX + PROMPT)
    assert batch["attention_mask"].all() and "labels" not in batch


def test_alt_text_lists_are_deduplicated_and_joined():
    assert join_alt_texts(["Zorblax", "a red square", "Zorblax", "", None]) == "Zorblax; a red square"
    assert join_alt_texts(None) == join_alt_texts("") == join_alt_texts([]) == join_alt_texts("   ") == ""
    assert join_alt_texts(" two   spaces\n") == "two spaces"


def test_empty_and_missing_alt_text_give_an_all_pad_prompt(processor):
    for alt in (None, "", [], [None, ""], "  \t "):
        ids = processor(images=_image(), alt_text=alt)["input_ids"][0]
        assert ids[PREFIX:].tolist() == [processor.tokenizer.pad_token_id] * PROMPT, alt


def test_alt_text_over_the_prompt_length_keeps_its_first_tokens(processor):
    words = " ".join(f"word{i}" for i in range(200))
    ids = processor(images=_image(), alt_text=words)["input_ids"][0]
    full = processor.tokenizer(words, add_special_tokens=False)["input_ids"]
    assert ids[PREFIX:].tolist() == full[:PROMPT]


def test_caption_budget_counts_text_only(tokenizer):
    """`max_length` counts text only, as the original's max_seq_len (MetaCLIP configs/altogether.py lines 31-32:
    320 = 128 prompt + 192 caption tokens; the prefix comes on top); an over-long caption is cut to the budget
    without </s>; one that fits gets its </s>."""
    processor = AltogetherProcessor.from_backbones(
        32, copy.deepcopy(tokenizer), prefix_length=PREFIX, prompt_length=PROMPT, max_length=PROMPT + 6
    )
    assert processor.caption_length == 6
    batch = processor(images=_image(), alt_text="a", captions="word " * 100)
    assert batch["input_ids"].shape[1] == PREFIX + PROMPT + 6
    assert (batch["labels"][0] >= 0).sum() == 6 and processor.tokenizer.eos_token_id not in batch["labels"][0].tolist()
    short = processor(images=_image(), alt_text="a", captions="word")
    assert short["labels"][0, -1] == processor.tokenizer.eos_token_id
    with pytest.raises(ValueError, match="no room for a caption"):
        AltogetherProcessor.from_backbones(32, copy.deepcopy(tokenizer), prefix_length=PREFIX, prompt_length=PROMPT,
                                           max_length=PROMPT)  # fmt: skip


def test_html_entities_and_tags_are_cleaned(processor):
    assert join_alt_texts("<b>Zorblax</b> &amp; friends &#39;22 &lt;3") == "Zorblax & friends '22 <3"
    assert join_alt_texts("<b>x</b> &amp; y", strip_html=False) == "<b>x</b> &amp; y"
    a = processor(images=_image(), alt_text="<i>Zorblax</i> &amp; co")["input_ids"]
    b = processor(images=_image(), alt_text="Zorblax & co")["input_ids"]
    assert torch.equal(a, b)


def test_literal_image_token_in_text_never_becomes_a_placeholder(tokenizer):
    for strip_html in (True, False):
        processor = AltogetherProcessor.from_backbones(
            32, copy.deepcopy(tokenizer), prefix_length=PREFIX, prompt_length=PROMPT, strip_html=strip_html
        )
        batch = processor(images=_image(), alt_text="look <image> here", captions="an <image> caption")
        assert int((batch["input_ids"] == processor.image_token_id).sum()) == PREFIX


def test_non_utf8_bytes_are_replaced_with_a_warning(processor, caplog):
    with caplog.at_level(logging.WARNING):
        ids = processor(images=_image(), alt_text=b"caf\xe9 au lait")["input_ids"]
    assert "alt_text[0]: invalid UTF-8" in caplog.text
    assert torch.equal(ids, processor(images=_image(), alt_text="caf\ufffd au lait")["input_ids"])
    assert join_alt_texts("lone \udcff surrogate") == "lone ? surrogate"
    assert join_alt_texts([b"ok bytes"]) == "ok bytes"


def test_bad_text_arguments_have_clear_errors(processor):
    with pytest.raises(TypeError, match=r"alt_text\[1\]"):
        processor(images=[_image(), _image()], alt_text=["fine", 42])
    with pytest.raises(ValueError, match="one entry per image"):
        processor(images=[_image(), _image()], alt_text=["only one"])
    with pytest.raises(ValueError, match="2 captions for 1"):
        processor(images=[_image()], captions=["a", "b"])
    with pytest.raises(ValueError, match="not both"):
        processor(images=_image(), text="a", alt_text="b")


def _png_with_header_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR claims width x height (a decompression-bomb header)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


def test_every_image_kind_gives_pixels_or_an_error_naming_the_input(processor, tiny_model, tmp_path):
    sixteen = Image.fromarray(np.arange(48 * 40, dtype=np.uint16).reshape(40, 48) * 30)
    assert sixteen.mode.startswith("I;16")
    palette = _image(3).convert("P")
    palette_alpha = _image(4).convert("P")
    palette_alpha.info["transparency"] = 0
    png_path = tmp_path / "ok.png"
    _image(5).save(png_path)
    good = {
        "grayscale": _image(1).convert("L"),
        "rgba": _image(2, channels=4),
        "palette": palette,
        "palette+transparency": palette_alpha,
        "cmyk": _image(6).convert("CMYK"),
        "16-bit": sixteen,
        "1x1": Image.new("RGB", (1, 1), (255, 0, 0)),
        "tall": _image(7, size=(3, 300)),
        "path": str(png_path),
        "bytes": png_path.read_bytes(),
        "array": np.zeros((20, 30, 3), dtype=np.uint8),
    }
    batch = processor(images=list(good.values()), alt_text=[None] * len(good))
    assert batch["pixel_values"].shape == (len(good), 3, 32, 32)
    assert torch.isfinite(batch["pixel_values"]).all()
    out = tiny_model[0].generate(**batch, do_sample=False, max_new_tokens=3)
    assert len(processor.batch_decode(out)) == len(good)

    bad = {
        "huge": (_png_with_header_size(10_000, 10_000), "exceeds the limit"),
        "bomb": (_png_with_header_size(20_000, 20_000), "decompression bomb"),
        "not an image": (b"<html>404</html>", "not a readable image"),
        "empty bytes": (b"", "empty image data"),
        "missing file": (str(tmp_path / "nope.jpg"), "no such file"),
        "truncated": (png_path.read_bytes()[:60], "images\\[1\\]"),
        "zero-size array": (np.zeros((0, 5, 3), dtype=np.uint8), "expected an HxW"),
        "wrong type": (12345, "unsupported image type"),
    }
    for label, (source, message) in bad.items():
        with warnings.catch_warnings(), pytest.raises(ImageInputError, match=r"images\[1\]") as error:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            processor(images=[_image(), source], alt_text=[None, None])
        assert error.match(message), label


# sizes whose resized margin is 3 mod 4 (454x448 -> 227x224, 462x448, 200x260, 227x224): transformers' own
# centre crop lands one pixel off torchvision's `int(round(margin / 2))` there
ODD_MARGINS = [(454, 448), (462, 448), (200, 260), (227, 224), (224, 227)]


def _sizes(size: int, count: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    sizes = [(int(w), int(h)) for w, h in rng.integers(1, 4 * size, size=(count, 2))]
    sizes += [(int(size * r), size) for r in (1.0, 1.01, 1.3, 2.0, 0.5)] + [(1, 1), (size - 1, size + 3)]
    return sizes


@pytest.mark.parametrize("size", [32, 224])
def test_image_processor_equals_torchvision_for_every_size(size, tmp_path, tokenizer):
    """open_clip's eval transform (torchvision Resize + CenterCrop, as in open_clip, OpenAI `clip.load`, MetaCLIP's
    `data_altogether_pt.py` lines 53-58 and `infer.py`) is the reference, over random sizes and aspect ratios."""
    import open_clip
    from transformers import CLIPImageProcessorPil

    processor = AltogetherProcessor.from_backbones(size, copy.deepcopy(tokenizer), prefix_length=PREFIX, prompt_length=PROMPT)
    transform = open_clip.image_transform(size, is_train=False)
    sizes = _sizes(size, 60, seed=size) + [(w * size // 224, h * size // 224) for w, h in ODD_MARGINS]
    images = [_image(i, s) for i, s in enumerate(sizes)]
    images.append(_image(9, (64, 48)).convert("L").convert("RGB"))
    ours = processor(images=images)["pixel_values"]
    theirs = torch.stack([transform(im) for im in images])
    bad = [sizes[i] for i in range(len(sizes)) if not torch.equal(ours[i], theirs[i])]
    assert not bad, f"pixel values differ from torchvision's for sizes {bad}"
    # transformers' stock processor does differ on the odd margins: the reference can tell them apart
    stock = CLIPImageProcessorPil(**{k: processor.image_processor.to_dict()[k] for k in ("size", "crop_size", "resample")})
    if size == 224:
        odd = [_image(0, s) for s in ODD_MARGINS]
        assert not any(torch.equal(a, transform(im)) for a, im in zip(stock(odd, return_tensors="pt")["pixel_values"], odd))
    # and after a save / load round trip
    processor.save_pretrained(tmp_path)
    reloaded = AltogetherProcessor.from_pretrained(tmp_path)
    assert type(reloaded.image_processor).__name__ == "AltogetherImageProcessor"
    assert torch.equal(reloaded(images=images)["pixel_values"], theirs)


def test_decoding_strips_the_prompt(processor):
    tok = processor.tokenizer
    inputs = processor(images=_image(), alt_text="Zorblax red square")["input_ids"]
    caption = tok("a red square.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id, tok.pad_token_id]
    full = torch.cat([inputs, torch.tensor([caption])], dim=1)
    assert processor.batch_decode(full) == ["a red square."]
    assert processor.post_process_image_text_to_text(full) == ["a red square."]
    assert processor.decode(full[0]) == "a red square."
    assert processor.batch_decode(torch.tensor([caption])) == ["a red square."]  # new tokens only
    assert processor.batch_decode(inputs) == [""]


def test_text_only_batches_for_cached_image_embeds(processor):
    batch = processor(alt_text=["a", None, ["b", "c"]], captions=["x", "y z", "w"])
    assert set(batch) == {"input_ids", "attention_mask", "labels"} and batch["input_ids"].shape[0] == 3
    single = processor(alt_text="only one")
    assert single["input_ids"].shape == (1, PREFIX + PROMPT)


def test_toyworld_records_train_end_to_end(tiny_toyworld, tiny_model):
    from hf_captioners.toyworld import load_hf_split

    _, processor = tiny_model[0], tiny_model[1]
    rows = load_hf_split(tiny_toyworld, "train").select(range(4))
    batch = processor(images=rows["image"], alt_text=rows["alt_texts"], captions=rows["caption"])
    model = tiny_model[0]
    loss = model(**batch).loss
    assert torch.isfinite(loss) and loss > 0
    assert processor.tokenizer.decode(batch["labels"][0][batch["labels"][0] >= 0]).startswith(rows["caption"][0])
