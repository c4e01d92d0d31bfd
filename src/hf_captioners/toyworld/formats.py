"""Writers for the real datasets' formats, so every loader in the project is exercised on real layouts.

Layout under the output root:
    images/{split}/{key}.jpg              the image root shared by the json formats
    altogether_ft/{split}.json            Altogether-FT: {"data": [{alt, round3, img_path, url, source}]}
    shards/{split}-{i:06d}.tar            MetaCLIP-style webdataset: {key}.jpeg + {key}.json {"texts": [[src, text]]}
    coco/dataset_coco.json                Karpathy-style splits with 5 sentences per image
    coco/captions_{split}.json            COCO annotation style (images + annotations)
    hf/{split}.parquet                    plain `datasets` table: image, alt_text, caption, captions, ...
All files are written to a temporary name and renamed, and are byte-identical for the same seed.
"""

from __future__ import annotations

import json
from pathlib import Path

from hf_captioners.io_utils import atomic_path, atomic_write_bytes, atomic_write_json
from hf_captioners.toyworld.world import ToyExample

__all__ = ["FORMATS", "ShardWriter", "SplitWriter", "ft_record"]

FORMATS = ("ft", "shards", "coco", "hf")


def ft_record(example: ToyExample) -> dict:
    """An Altogether-FT record; the `toy_*` fields are toy-world ground truth used by the metrics."""
    return {
        "alt": example.alt_text,
        "round3": example.caption,
        "img_path": f"{example.split}/{example.key}.jpg",
        "url": f"https://toyworld.invalid/{example.split}/{example.key}.jpg",
        "source": "wit" if int(example.key[-1]) % 2 else "datacomp",
        "key": example.key,
        "toy_name": example.scene.name,
        "toy_alt_has_name": example.alt_has_name,
        "toy_alt_error": example.alt_error,
        "toy_scene": example.scene_dict(),
    }


class ShardWriter:
    """Writes deterministic webdataset tars (`webdataset.TarWriter`, fixed mtime and owner) of `shard_size`
    samples each, each tar renamed into place when complete."""

    def __init__(self, directory: Path, split: str, shard_size: int):
        self.directory, self.split, self.shard_size = directory, split, shard_size
        self.paths: list[Path] = []
        self._count = 0
        self._tar = None
        self._ctx = None
        self._file = None

    def _open(self) -> None:
        from webdataset import TarWriter

        path = self.directory / f"{self.split}-{len(self.paths):06d}.tar"
        self.paths.append(path)
        self._ctx = atomic_path(path)
        self._file = open(self._ctx.__enter__(), "wb")  # noqa: SIM115 - closed in _close
        self._tar = TarWriter(self._file, user="", group="", mode=0o644, mtime=0, encoder=False)

    def write(self, example: ToyExample) -> None:
        if self._tar is None:
            self._open()
        meta = {"key": example.key, "texts": [list(t) for t in example.alt_texts]}
        self._tar.write({"__key__": example.key, "jpeg": example.image_bytes,
                         "json": json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()})
        self._count += 1
        if self._count % self.shard_size == 0:
            self._close()

    def _close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._file.close()
            self._ctx.__exit__(None, None, None)
            self._tar = self._ctx = self._file = None

    def close(self) -> list[Path]:
        self._close()
        return self.paths


class SplitWriter:
    """Streams one split's examples into every requested format."""

    def __init__(self, root: Path, split: str, formats: tuple[str, ...], shard_size: int = 1000):
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown formats {sorted(unknown)}; choose from {FORMATS}")
        self.root, self.split, self.formats = root, split, formats
        self.ft_records: list[dict] = []
        self.coco_images: list[dict] = []
        self.rows: list[dict] = []
        self.shards = ShardWriter(root / "shards", split, shard_size) if "shards" in formats else None
        self.files: list[Path] = []

    def write(self, example: ToyExample) -> None:
        if "ft" in self.formats or "coco" in self.formats:
            atomic_write_bytes(self.root / "images" / self.split / f"{example.key}.jpg", example.image_bytes)
        if "ft" in self.formats:
            self.ft_records.append(ft_record(example))
        if "coco" in self.formats:
            self.coco_images.append(
                {
                    "filepath": self.split,
                    "filename": f"{example.key}.jpg",
                    "split": self.split,
                    "cocoid": example.key,
                    "sentences": [{"raw": c, "tokens": c.replace(",", " ,").replace(":", " :").split()} for c in example.captions],
                }
            )
        if self.shards is not None:
            self.shards.write(example)
        if "hf" in self.formats:
            self.rows.append(
                {
                    "image": {"bytes": example.image_bytes, "path": f"{example.key}.jpg"},
                    "key": example.key,
                    "alt_text": example.alt_text,
                    "alt_texts": [t for _, t in example.alt_texts],
                    "caption": example.caption,
                    "captions": example.captions,
                    "name": example.scene.name,
                    "alt_has_name": example.alt_has_name,
                    "alt_error": json.dumps(example.alt_error, sort_keys=True) if example.alt_error else "",
                    "scene": json.dumps(example.scene_dict(), sort_keys=True),
                }
            )

    def close(self) -> list[Path]:
        if "ft" in self.formats:
            path = self.root / "altogether_ft" / f"{self.split}.json"
            atomic_write_json(path, {"data": self.ft_records})
            self.files.append(path)
        if "coco" in self.formats:
            path = self.root / "coco" / f"captions_{self.split}.json"
            images = [{"id": i, "file_name": f"{im['filepath']}/{im['filename']}"} for i, im in enumerate(self.coco_images)]
            annotations = [
                {"id": i * 5 + j, "image_id": i, "caption": s["raw"]}
                for i, im in enumerate(self.coco_images)
                for j, s in enumerate(im["sentences"])
            ]
            atomic_write_json(path, {"images": images, "annotations": annotations})
            self.files.append(path)
        if self.shards is not None:
            self.files.extend(self.shards.close())
        if "hf" in self.formats:
            self.files.append(self._write_parquet())
        return self.files

    def _write_parquet(self) -> Path:
        import datasets

        features = datasets.Features(
            {
                "image": datasets.Image(),
                "key": datasets.Value("string"),
                "alt_text": datasets.Value("string"),
                "alt_texts": datasets.List(datasets.Value("string")),
                "caption": datasets.Value("string"),
                "captions": datasets.List(datasets.Value("string")),
                "name": datasets.Value("string"),
                "alt_has_name": datasets.Value("bool"),
                "alt_error": datasets.Value("string"),
                "scene": datasets.Value("string"),
            }
        )
        table = datasets.Dataset.from_list(self.rows, features=features)
        path = self.root / "hf" / f"{self.split}.parquet"
        with atomic_path(path) as tmp:
            table.to_parquet(str(tmp))
        return path


def write_karpathy(root: Path, images_by_split: dict[str, list[dict]]) -> Path:
    """One Karpathy-style `dataset_coco.json` over all splits, with global image and sentence ids."""
    images, sent_id = [], 0
    for split_images in images_by_split.values():
        for image in split_images:
            image = dict(image, imgid=len(images))
            image["sentids"] = list(range(sent_id, sent_id + len(image["sentences"])))
            image["sentences"] = [
                dict(s, imgid=image["imgid"], sentid=sent_id + j) for j, s in enumerate(image["sentences"])
            ]
            sent_id += len(image["sentences"])
            images.append(image)
    path = root / "coco" / "dataset_coco.json"
    atomic_write_json(path, {"dataset": "toyworld", "images": images})
    return path
