"""Tiny CLIP pretraining on the shared tiny toy world: it learns, saves, and reloads to the same outputs."""

from __future__ import annotations

import json

import pytest
import torch

from hf_captioners.toyworld.backbones.clip import evaluate_clip, pretrain_clip

TINY = {"hidden": 32, "layers": 1, "projection": 32, "text_layers": 1}


@pytest.fixture(scope="module")
def trained(tiny_toyworld, tmp_path_factory):
    out = tmp_path_factory.mktemp("clip")
    metrics = pretrain_clip(tiny_toyworld, out, config=TINY, steps=40, batch_size=32, lr=3e-3, progress=False, threads=1)
    return out, metrics


def test_loss_falls_and_metrics_are_reported(trained):
    out, metrics = trained
    assert metrics["loss_end"] < metrics["loss_start"] - 0.3
    assert metrics["train_images"] == 32 and metrics["eval_images"] == 16
    for key in ("recall_at_1", "recall_at_1_short", "zero_shot_color_acc"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["chance_dense"] == pytest.approx(1 / 16)
    assert json.loads((out / "pretrain_metrics.json").read_text())["steps"] == 40


def test_saved_folder_loads_with_auto_classes_and_same_outputs(trained, tiny_toyworld):
    from PIL import Image
    from transformers import AutoModel, AutoProcessor, AutoTokenizer, CLIPModel, CLIPProcessor

    out, _ = trained
    model = AutoModel.from_pretrained(out)
    assert isinstance(model, CLIPModel)
    processor = CLIPProcessor.from_pretrained(out)
    assert isinstance(AutoProcessor.from_pretrained(out), CLIPProcessor)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer("a red circle").input_ids == [49406, 320, 736, 7117, 49407]
    image = Image.new("RGB", (64, 64), (215, 40, 40))
    inputs = processor(images=[image], text=["a red circle", "a blue star"], padding=True, truncation=True, return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 3, 64, 64)
    again = CLIPModel.from_pretrained(out)
    with torch.no_grad():
        first, second = model(**inputs), again(**inputs)
    assert torch.allclose(first.logits_per_image, second.logits_per_image)


def test_recall_counts_the_diagonal():
    """A model whose image and text embeddings agree by construction gets recall 1; shuffled texts get less."""

    class Echo(torch.nn.Module):
        def get_image_features(self, pixel_values):
            return pixel_values.flatten(1)

        def get_text_features(self, input_ids, attention_mask=None):
            return torch.nn.functional.one_hot(input_ids[:, 1] % 4, 4).float()

    class Tok:
        def __call__(self, texts, **kwargs):
            return {"input_ids": torch.tensor([[0, int(t.split()[-1])] for t in texts])}

    pixels = torch.eye(4).view(4, 4, 1, 1)
    captions = [[f"short {i}", f"dense {i}"] for i in range(4)]
    metrics = evaluate_clip(Echo(), Tok(), pixels, captions)
    assert metrics["recall_at_1"] == 1.0 and metrics["recall_at_1_short"] == 1.0
    swapped = [[f"short {(i + 1) % 4}", f"dense {(i + 1) % 4}"] for i in range(4)]
    assert evaluate_clip(Echo(), Tok(), pixels, swapped)["recall_at_1"] == 0.0


def test_dense_caption_without_name_matches_the_nameless_captions(tiny_toyworld):
    from hf_captioners.toyworld import load_hf_split
    from hf_captioners.toyworld.backbones.common import caption_without_name

    rows = load_hf_split(tiny_toyworld, "backbone")
    for row in rows.remove_columns(["image"]):
        text = caption_without_name(row["scene"], row["key"])
        assert row["name"] not in text and text.startswith("A picture showing")
        if not row["alt_has_name"]:
            assert text == row["caption"]
    with pytest.raises(ValueError, match="record bad7"):
        caption_without_name("{not json", "bad7")


def test_unreadable_record_is_skipped_and_named(tiny_toyworld, tmp_path, caplog):
    import datasets

    from hf_captioners.convert.open_clip_to_hf import openai_clip_image_processor
    from hf_captioners.toyworld.backbones.clip import _load_split

    table = datasets.load_dataset("parquet", data_files=str(tiny_toyworld / "hf" / "eval.parquet"), split="train")
    table = table.cast_column("image", datasets.Image(decode=False))
    bad_key = table[0]["key"]
    table = table.map(lambda row, i: {"image": {"bytes": b"not a jpeg" if i == 0 else row["image"]["bytes"],
                                                "path": row["image"]["path"]}}, with_indices=True)
    (tmp_path / "hf").mkdir()
    table.to_parquet(str(tmp_path / "hf" / "eval.parquet"))
    with caplog.at_level("WARNING"):
        pixels, captions, scenes, _ = _load_split(tmp_path, "eval", None, openai_clip_image_processor(64), False)
    assert len(pixels) == len(captions) == len(scenes) == 15
    assert bad_key in caplog.text


def test_batches_mix_synthetic_captions_at_the_given_share():
    from hf_captioners.toyworld.backbones.clip import _batches

    class Tok:
        def __call__(self, texts, **kwargs):
            Tok.seen = texts
            return {"input_ids": torch.zeros(len(texts), 2, dtype=torch.long)}

    pixels = torch.zeros(400, 3, 2, 2)
    own = [[f"alt {i}"] for i in range(400)]
    synthetic = [f"re-caption {i}" if i % 4 else None for i in range(400)]  # every 4th image has none
    for share, expected in ((0.0, 0.0), (1.0, 0.75), (0.5, 0.375)):
        next(_batches(pixels, own, Tok(), 400, seed=0, synthetic=synthetic, synthetic_share=share))
        rate = sum(t.startswith("re-caption") for t in Tok.seen) / 400
        assert abs(rate - expected) < 0.06, (share, rate)


def test_alt_text_source_reads_the_raw_alt_texts(tiny_toyworld):
    from hf_captioners.convert.open_clip_to_hf import openai_clip_image_processor
    from hf_captioners.toyworld import load_hf_split
    from hf_captioners.toyworld.backbones.clip import _load_split

    _, texts, _, keys = _load_split(tiny_toyworld, "backbone", 8, openai_clip_image_processor(64), False, "alt_texts")
    rows = load_hf_split(tiny_toyworld, "backbone").select(range(8))
    assert keys == rows["key"] and texts == [list(a) or [""] for a in rows["alt_texts"]]
    with pytest.raises(ValueError, match="text_source"):
        _load_split(tiny_toyworld, "backbone", 8, openai_clip_image_processor(64), False, "captions_typo")
