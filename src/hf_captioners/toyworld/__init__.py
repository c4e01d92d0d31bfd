"""A seeded toy world of images, web-like alt-texts and dense captions, in the real datasets' formats."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

from tqdm.auto import tqdm

from hf_captioners.io_utils import atomic_write_json
from hf_captioners.toyworld.formats import FORMATS, SplitWriter, ft_record, write_karpathy
from hf_captioners.toyworld.world import (
    BACKGROUNDS,
    COLORS,
    POSITIONS,
    SHAPES,
    SIZES,
    Scene,
    SceneObject,
    ToyExample,
    ToyWorldConfig,
    ToyWorldStats,
    coco_captions,
    dense_caption,
    describe_object,
    generate_example,
    is_eval_name,
    render_scene,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "FORMATS",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "Scene",
    "SceneObject",
    "ToyExample",
    "ToyWorldConfig",
    "ToyWorldStats",
    "coco_captions",
    "dense_caption",
    "describe_object",
    "ft_record",
    "generate_example",
    "generate_toyworld",
    "is_eval_name",
    "load_hf_split",
    "render_scene",
]

# "eval" is the test split; "val" is where every choice is made; "judge" trains only the evaluation CLIP.
DEFAULT_SPLITS = {"train": 20000, "val": 500, "eval": 500, "backbone": 10000}
# Backbone pretraining reads the plain `datasets` table; the backbone split's shards are what a CLIP trained
# on re-captions is re-captioned from. The judge split trains the evaluation CLIP only.
SPLIT_FORMATS = {"backbone": ("hf", "shards"), "judge": ("hf",)}


def _examples(cfg: ToyWorldConfig, split: str, count: int, workers: int):
    make = partial(generate_example, cfg, split)
    if workers <= 1 or count < 256:
        yield from map(make, range(count))
        return
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with context.Pool(workers) as pool:
        yield from pool.imap(make, range(count), chunksize=64)


def generate_toyworld(
    out: str | os.PathLike,
    splits: dict[str, int] | None = None,
    config: ToyWorldConfig | None = None,
    formats: tuple[str, ...] = FORMATS,
    shard_size: int = 1000,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Generate every split into `out` and write `toyworld.json` (config + measured statistics).

    Returns that summary. The backbone split is written as a `datasets` table and shards only, the judge
    split as a table only.
    """
    root = Path(out)
    cfg = config or ToyWorldConfig()
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    start = time.perf_counter()
    summary: dict = {"config": asdict(cfg), "formats": list(formats), "splits": {}, "files": []}
    coco_images = {}
    for split, count in splits.items():
        if count <= 0:
            continue
        split_formats = tuple(f for f in formats if f in SPLIT_FORMATS.get(split, formats))
        writer = SplitWriter(root, split, split_formats, shard_size=shard_size)
        stats = ToyWorldStats()
        for example in tqdm(_examples(cfg, split, count, workers), total=count, desc=f"toyworld {split}", disable=not progress):
            writer.write(example)
            stats.add(example, cfg)
        files = writer.close()
        summary["files"] += [str(p.relative_to(root)) for p in files]
        summary["splits"][split] = stats.summary()
        if writer.coco_images:
            coco_images[split] = writer.coco_images
    if coco_images:
        summary["files"].append(str(write_karpathy(root, coco_images).relative_to(root)))
    summary["seconds"] = round(time.perf_counter() - start, 2)
    atomic_write_json(root / "toyworld.json", {k: v for k, v in summary.items() if k != "seconds"}, indent=1)
    logger.info("toy world written to %s in %.1fs", root, summary["seconds"])
    return summary


def load_hf_split(root: str | os.PathLike, split: str):
    """The `datasets` table of one split (columns: image, key, alt_text, alt_texts, caption, captions, ...)."""
    import datasets

    path = Path(root) / "hf" / f"{split}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no toy-world split {split!r} at {path}; generate it with `hf-captioners toyworld`")
    return datasets.load_dataset("parquet", data_files={split: str(path)}, split=split)
