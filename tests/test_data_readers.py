"""One reader per data format (hf_captioners.data), with the skip rules every caller now shares."""

from __future__ import annotations

import io
import json
import tarfile

import pytest


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_coco_reader_skips_the_same_records_for_evaluation_and_training(tmp_path):
    from hf_captioners.data.coco import read_coco_captions
    from hf_captioners.evaluation.runner import load_eval_set

    karpathy = _write(tmp_path / "dataset_coco.json", {"images": [
        {"cocoid": 1, "filepath": "val2014", "filename": "a.jpg", "split": "test",
         "sentences": [{"raw": " A dog. "}, {"raw": ""}, {"raw": "a dog running"}]},
        {"cocoid": 1, "filepath": "val2014", "filename": "b.jpg", "split": "test", "sentences": [{"raw": "dup"}]},
        {"cocoid": 2, "filename": "c.jpg", "split": "test", "sentences": [{"raw": "   "}]},
        {"cocoid": 3, "filename": "d.jpg", "split": "train", "sentences": [{"raw": "a cat"}]},
        {"cocoid": 4, "split": "test", "sentences": [{"raw": "no file"}]},
    ]})
    skipped = []
    records = read_coco_captions(karpathy, tmp_path / "images", "test", skip=lambda k, r: skipped.append((k, r.split(":")[0])))
    assert records == [{"key": "1", "path": str(tmp_path / "images" / "val2014" / "a.jpg"),
                        "captions": ["A dog.", "a dog running"]}]
    assert skipped == [("1#1", "EmptyCaption"), ("1", "DuplicateKey"), ("2#0", "EmptyCaption"), ("2", "NoCaptions"),
                       ("4", "MissingField")]
    examples = load_eval_set(coco_json=str(karpathy), image_root=str(tmp_path / "images"), split="test")
    assert [(e.key, str(e.image), e.references) for e in examples] == [
        (r["key"], r["path"], r["captions"]) for r in records]
    assert [r["key"] for r in read_coco_captions(karpathy, splits="train,test", skip=lambda k, r: None)] == ["1", "3"]

    annotations = _write(tmp_path / "captions.json", {"images": [{"id": 7, "file_name": "x.jpg"}, {"id": 8, "file_name": "y.jpg"}],
                                                       "annotations": [{"image_id": 7, "caption": "a red bus"}]})
    assert [(r["key"], r["captions"]) for r in read_coco_captions(annotations, skip=lambda k, r: None)] == [("7", ["a red bus"])]
    for bad, message in (([1, 2], "expected Karpathy"), ({"images": []}, "no images")):
        with pytest.raises(ValueError, match=message):
            read_coco_captions(_write(tmp_path / "bad.json", bad))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        read_coco_captions(tmp_path / "broken.json")


def test_altogether_ft_reader_and_its_dataset(tmp_path):
    from hf_captioners.data.altogether_ft import as_dataset, read_altogether_ft

    path = _write(tmp_path / "ft.json", {"data": [
        {"alt": "Vuldu ring", "round3": "A picture of Vuldu.", "img_path": "a.jpg", "source": "wit"},
        "not a record",
        {"alt": "x", "round3": "  ", "img_path": "b.jpg"},
        {"alt": "y", "round3": "A star.", "key": "k4"},
        {"round3": "A ring.", "img_path": "c.jpg", "extra": 3},
    ]})
    skipped = []
    records = read_altogether_ft(path, skip=lambda k, r: skipped.append((k, r.split(":")[0])))
    assert [r["img_path"] for r in records] == ["a.jpg", "c.jpg"]
    assert skipped == [("1", "NotARecord"), ("2", "MissingField"), ("k4", "MissingField")]
    table = as_dataset(records)
    assert table.column_names == ["alt", "round3", "img_path", "source", "extra"]
    assert table[1] == {"alt": None, "round3": "A ring.", "img_path": "c.jpg", "source": None, "extra": 3}
    with pytest.raises(ValueError, match="a JSON object with a 'data' list"):
        read_altogether_ft(_write(tmp_path / "bad.json", [1]))


def test_metaclip_metadata_and_the_member_limit(tmp_path):
    from hf_captioners.data.alt_text import alt_texts_from_metadata
    from hf_captioners.data.shards import Record, iter_shard_records

    assert alt_texts_from_metadata({"texts": [["alt", " a  dog "], ["title", "a dog"], ["alt", "Rex"]]}) == ["a dog", "Rex"]
    assert alt_texts_from_metadata({"texts": "one"}) == ["one"] and alt_texts_from_metadata({}) == []
    for bad in ([1], {"texts": 3}, {"texts": [["only source"]]}, {"texts": [["alt", 5]]}):
        with pytest.raises(ValueError):
            alt_texts_from_metadata(bad)

    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in (("a.jpg", b"x" * 10), ("a.json", b'{"texts": [["alt", "ok"]]}'), ("b.jpg", b"y" * 100)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    records = [r for r in iter_shard_records(str(shard), max_member_bytes=50) if isinstance(r, Record)]
    assert [(r.key, r.alt_texts, r.error) for r in records] == [
        ("a", ["ok"], None), ("b", [], "b.jpg: 100 bytes, over the member limit")]
