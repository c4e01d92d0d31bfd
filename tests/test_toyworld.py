"""The toy world: determinism, real-format loading, name disjointness, alt-text noise rates, corrections."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from hf_captioners.toyworld import (
    COLORS,
    SHAPES,
    ToyWorldConfig,
    describe_object,
    generate_example,
    generate_toyworld,
    is_eval_name,
    load_hf_split,
)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path):
    splits = {"train": 40, "eval": 10, "backbone": 12}
    generate_toyworld(tmp_path / "a", splits=splits, shard_size=16, workers=1, progress=False)
    generate_toyworld(tmp_path / "b", splits=splits, shard_size=16, workers=2, progress=False)
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert a == b
    assert {"toyworld.json", "altogether_ft/train.json", "coco/dataset_coco.json", "hf/eval.parquet"} <= set(a)
    assert "shards/train-000002.tar" in a  # 40 samples at 16 per shard -> 3 shards

    generate_toyworld(tmp_path / "c", splits=splits, config=ToyWorldConfig(seed=1), shard_size=16, workers=1, progress=False)
    assert _digests(tmp_path / "c")["altogether_ft/train.json"] != a["altogether_ft/train.json"]


def test_example_is_independent_of_the_rest_of_the_split():
    cfg = ToyWorldConfig(seed=3)
    alone = generate_example(cfg, "train", 17)
    again = generate_example(cfg, "train", 17)
    assert alone.image_bytes == again.image_bytes and alone.alt_texts == again.alt_texts


def test_altogether_ft_json_loads_with_datasets(tiny_toyworld):
    import datasets

    ds = datasets.load_dataset("json", data_files=str(tiny_toyworld / "altogether_ft" / "train.json"), field="data", split="train")
    assert len(ds) == 64
    assert {"alt", "round3", "img_path", "url", "source"} <= set(ds.column_names)
    record = ds[0]
    image = Image.open(tiny_toyworld / "images" / record["img_path"])
    assert image.size == (64, 64) and image.mode == "RGB"
    assert set(ds["source"]) <= {"wit", "datacomp"}


def test_pretraining_shards_load_with_webdataset_builder(tiny_toyworld):
    import datasets

    shards = sorted(str(p) for p in (tiny_toyworld / "shards").glob("train-*.tar"))
    ds = datasets.load_dataset("webdataset", data_files={"train": shards}, split="train")
    assert len(ds) == 64
    sample = ds[0]
    assert isinstance(sample["jpeg"], Image.Image)
    texts = sample["json"]["texts"]
    assert all(len(pair) == 2 and pair[0] in {"alt", "title", "caption"} for pair in texts)
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
    assert names[0].endswith(".jpeg") and names[1].endswith(".json") and names[0][:-5] == names[1][:-5]


def test_coco_and_hf_formats(tiny_toyworld):
    karpathy = json.loads((tiny_toyworld / "coco" / "dataset_coco.json").read_text())
    splits = {im["split"] for im in karpathy["images"]}
    assert splits == {"train", "eval"}
    assert all(len(im["sentences"]) == 5 and len(set(s["raw"] for s in im["sentences"])) == 5 for im in karpathy["images"])
    coco = json.loads((tiny_toyworld / "coco" / "captions_train.json").read_text())
    assert len(coco["annotations"]) == 5 * len(coco["images"]) == 320

    table = load_hf_split(tiny_toyworld, "eval")
    assert len(table) == 16
    assert {"image", "alt_text", "caption", "captions", "name"} <= set(table.column_names)
    assert table[0]["image"].size == (64, 64)
    assert len(load_hf_split(tiny_toyworld, "backbone")) == 32
    with pytest.raises(FileNotFoundError, match="no toy-world split 'nope'"):
        load_hf_split(tiny_toyworld, "nope")


def test_eval_names_are_disjoint_from_train_names():
    cfg = ToyWorldConfig()
    train = {generate_example(cfg, "train", i).scene.name for i in range(300)}
    evals = {generate_example(cfg, "eval", i).scene.name for i in range(300)}
    val = {generate_example(cfg, "val", i).scene.name for i in range(300)}
    assert train and evals and val and not train & evals and not train & val
    assert val != evals  # the same pool, different images
    assert all(is_eval_name(n) for n in evals | val) and not any(is_eval_name(n) for n in train)
    # The name is never part of what is drawn: COCO-style captions (image-only descriptions) never carry it.
    for i in range(50):
        ex = generate_example(cfg, "eval", i)
        assert all(ex.scene.name.lower() not in c.lower() for c in ex.captions)


def test_alt_text_noise_rates_match_the_config():
    cfg = ToyWorldConfig(seed=5)
    examples = [generate_example(cfg, "train", i) for i in range(2000)]
    n = len(examples)
    empty = sum(e.alt_kind == "empty" for e in examples) / n
    junk = sum(e.alt_kind == "junk" for e in examples) / n
    informative = [e for e in examples if e.alt_kind == "informative"]
    with_name = sum(e.alt_has_name for e in informative) / len(informative)
    mentions = [e for e in informative if e.alt_error is not None or any(c in e.alt_text for c in COLORS)]
    wrong = sum(e.alt_error is not None for e in informative)
    assert abs(empty - cfg.p_empty) < 0.025
    assert abs(junk - cfg.p_junk) < 0.03
    assert abs(with_name - cfg.p_name) < 0.03
    assert wrong > 0 and abs(wrong / len(mentions) - cfg.p_wrong) < 0.05
    assert all(e.alt_text == "" for e in examples if e.alt_kind == "empty")


def test_dense_caption_corrects_the_alt_text_and_keeps_the_name():
    cfg = ToyWorldConfig(p_wrong=1.0, p_object=1.0, p_empty=0.0, p_junk=0.0)
    checked = 0
    for i in range(200):
        ex = generate_example(cfg, "eval", i)
        error = ex.alt_error
        assert error is not None
        obj = ex.scene.objects[error["object"]]
        assert getattr(obj, error["field"]) == error["right"] != error["wrong"]
        assert error["wrong"] in ex.alt_text
        assert describe_object(obj) in ex.caption  # the true attributes are stated
        wrong_obj = dict(vars(obj), **{error["field"]: error["wrong"]})
        wrong_phrase = f"{wrong_obj['color']} {wrong_obj['shape']}"
        assert wrong_phrase not in ex.caption or any(
            f"{o.color} {o.shape}" == wrong_phrase for o in ex.scene.objects
        )
        assert (ex.scene.name in ex.caption) == ex.alt_has_name == (ex.scene.name in ex.alt_text)
        checked += 1
    assert checked == 200


def test_captions_describe_every_object():
    cfg = ToyWorldConfig()
    for i in range(100):
        ex = generate_example(cfg, "train", i)
        for obj in ex.scene.objects:
            assert describe_object(obj) in ex.caption
        assert f"{ex.scene.background} background" in ex.caption


def test_held_out_concept_only_outside_the_train_split():
    cfg = ToyWorldConfig(held_out=("gray", "star"))
    train = [generate_example(cfg, "train", i) for i in range(400)]
    for ex in train:
        text = " ".join([ex.caption, *ex.captions, *(t for _, t in ex.alt_texts)])
        assert not re.search(r"\b(gray|star)\b", text), text
    backbone = [generate_example(cfg, "backbone", i) for i in range(400)]
    evals = [generate_example(cfg, "eval", i) for i in range(400)]
    for split in (backbone, evals):
        assert any(o.color == "gray" for ex in split for o in ex.scene.objects)
        assert any(o.shape == "star" for ex in split for o in ex.scene.objects)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="held_out"):
        ToyWorldConfig(held_out=("vermilion",))
    with pytest.raises(ValueError, match="probability"):
        ToyWorldConfig(p_wrong=1.5)
    with pytest.raises(ValueError, match="max_objects"):
        ToyWorldConfig(max_objects=9)
    assert len(SHAPES) >= 6 and len(COLORS) >= 8


def test_cli_writes_and_summarises(tmp_path):
    out = tmp_path / "tw"
    result = subprocess.run(
        [sys.executable, "-m", "hf_captioners.commands", "toyworld", "--out", str(out), "--train", "20", "--eval", "5",
         "--backbone", "0", "--formats", "ft,hf", "--no-progress"],
        capture_output=True, text=True, check=True,
    )
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("toyworld: 25 images") and str(out) in last
    assert (out / "altogether_ft" / "eval.json").exists() and not (out / "shards").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "hf_captioners.commands", "toyworld", "--out", str(out), "--formats", "ft,zip"],
        capture_output=True, text=True,
    )
    assert bad.returncode != 0 and "unknown ['zip']" in bad.stderr
