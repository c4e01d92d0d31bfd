"""Re-captioning webdataset shards at scale: streaming, resumable, exactly once, never stopped by one bad record.

A shard's results become visible only when its main output `{shard}.json` (the original Altogether
format, `{key: {"<model>": caption}}`) is renamed into place, after its sidecars. So:
- a finished shard is skipped on restart, an unfinished one is redone from scratch;
- a `kill -9` at any moment leaves no torn file and, after a resumed run, exactly one caption per record.

Workers of a torch DataLoader read and preprocess whole shards while the main process generates;
each rank of a multi-process run takes `shards[rank::world_size]`, so ranks neither overlap nor leave gaps.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .altogether.image_utils import DEFAULT_MAX_PIXELS, ImageInputError, load_rgb_image
from .io_utils import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "RecaptionSummary",
    "ShardCaptioner",
    "caption_shards",
    "expand_shard_specs",
    "iter_shard_records",
    "prepare_alt_texts",
    "shard_outputs",
    "shards_for_rank",
]

IMAGE_EXTENSIONS = ("jpeg", "jpg", "png", "webp")


class ShardCaptioner(Protocol):
    """What the engine needs from a model: per-record preprocessing (run in DataLoader workers),
    collation, and batched generation (run in the main process).

    `preprocess` is handed to the workers alone, so it should hold the processor, not the model.
    """

    output_key: str
    preprocess: Callable[[Any, list[str]], dict[str, Any]]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]: ...

    def generate(self, batch: dict[str, Any]) -> list[str]: ...


def expand_shard_specs(specs: str | Iterable[str]) -> list[str]:
    """Brace patterns (`a-{000..099}.tar`), globs, plain paths and `@list.txt` files → ordered unique paths."""
    import braceexpand

    specs = [specs] if isinstance(specs, str) else list(specs)
    paths: list[str] = []
    for spec in specs:
        if spec.startswith("@"):
            lines = Path(spec[1:]).read_text().splitlines()
            paths.extend(expand_shard_specs([line.strip() for line in lines if line.strip()]))
            continue
        for expanded in braceexpand.braceexpand(spec):
            if glob.has_magic(expanded):
                matches = sorted(glob.glob(expanded))
                if not matches:
                    raise FileNotFoundError(f"shard pattern {expanded!r} matches no file")
                paths.extend(matches)
            else:
                paths.append(expanded)
    seen, unique = set(), []
    for path in paths:
        if path not in seen:
            seen.add(path)
            unique.append(path)
    if not unique:
        raise ValueError(f"no shards in {specs}")
    return unique


def shards_for_rank(shards: list[str], rank: int, world_size: int) -> list[str]:
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return shards[rank::world_size]


def shard_stem(path: str) -> str:
    name = os.path.basename(path)
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def shard_outputs(out_dir: str | os.PathLike, shard: str) -> dict[str, Path]:
    stem = shard_stem(shard)
    out = Path(out_dir)
    return {
        "json": out / f"{stem}.json",
        "errors": out / f"{stem}.errors.jsonl",
        "jsonl": out / f"{stem}.jsonl",
        "parquet": out / f"{stem}.parquet",
    }


def prepare_alt_texts(texts: Iterable[str]) -> list[str]:
    """Strip and deduplicate alt-texts in order (the original joined these with '; ')."""
    seen, kept = set(), []
    for text in texts:
        text = " ".join(str(text).split())
        if text and text not in seen:
            seen.add(text)
            kept.append(text)
    return kept


@dataclass
class Record:
    shard: str
    key: str
    image_bytes: bytes | None = None
    alt_texts: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class ShardEnd:
    shard: str
    records: int
    error: str | None = None


def _parse_alt_texts(sample: dict[str, bytes]) -> list[str]:
    if "json" in sample:
        meta = json.loads(sample["json"].decode("utf-8"))
        texts = meta.get("texts")
        if texts is None:
            raise ValueError("json has no 'texts' field")
        return prepare_alt_texts(t[1] if isinstance(t, (list, tuple)) else t for t in texts)
    if "txt" in sample:
        return prepare_alt_texts([sample["txt"].decode("utf-8")])
    raise ValueError("no .json or .txt alt-text")


def iter_shard_records(shard: str) -> Iterator[Record | ShardEnd]:
    """Yield one `Record` per key of a tar (with `error` set when it is unusable), then a `ShardEnd`.

    A truncated or corrupt tar ends with `ShardEnd.error` set; the records read before it still count.
    """
    from webdataset.tariterators import base_plus_ext

    count, current_key, sample = 0, None, {}

    def flush() -> Record:
        image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in sample), None)
        record = Record(shard, current_key)
        try:
            record.alt_texts = _parse_alt_texts(sample)
        except (ValueError, UnicodeDecodeError) as error:
            record.error = f"unreadable alt-text: {error}"
        if image_ext is None:
            record.error = "missing image" if record.error is None else f"missing image; {record.error}"
        else:
            record.image_bytes = sample[image_ext]
        return record

    try:
        with tarfile.open(shard, mode="r|*") as stream:
            for info in stream:
                if not info.isreg():
                    continue
                prefix, suffix = base_plus_ext(info.name)
                if prefix is None:
                    continue
                data = stream.extractfile(info).read()
                if prefix != current_key and current_key is not None:
                    count += 1
                    yield flush()
                    sample = {}
                current_key = prefix
                sample[suffix.lower()] = data
        if current_key is not None:
            count += 1
            yield flush()
        yield ShardEnd(shard, count)
    except (tarfile.TarError, OSError, EOFError) as error:
        where = f"after key {current_key!r}" if current_key else "before the first record"
        if current_key is not None and sample:
            count += 1
            yield Record(shard, current_key, error=f"record cut off by a truncated tar: {error}")
        yield ShardEnd(shard, count, error=f"corrupt or truncated tar {where}: {error}")


@dataclass
class Batch:
    """Up to `batch_size` preprocessed, collated records of one shard (one IPC message, not one per record)."""

    shard: str
    keys: list[str]
    alt_texts: list[list[str]]
    features: Any


def _read_and_preprocess(shard: str, captioner_parts, batch_size: int, max_pixels: int | None):
    preprocess, collate = captioner_parts
    keys, alts, features = [], [], []

    def flush() -> Batch:
        batch = Batch(shard, keys[:], alts[:], collate(features[:]))
        del keys[:], alts[:], features[:]
        return batch

    for item in iter_shard_records(shard):
        if isinstance(item, ShardEnd):
            if keys:
                yield flush()
            yield item
            continue
        if item.error is not None:
            yield item
            continue
        try:
            image = load_rgb_image(item.image_bytes, name=f"{shard}:{item.key}", max_pixels=max_pixels)
            record_features = preprocess(image, item.alt_texts)
        except ImageInputError as error:
            yield Record(shard, item.key, alt_texts=item.alt_texts, error=str(error))
            continue
        except Exception as error:  # a preprocessing bug must not stop the shard
            yield Record(shard, item.key, alt_texts=item.alt_texts, error=f"preprocessing failed: {error!r}")
            continue
        keys.append(item.key)
        alts.append(item.alt_texts)
        features.append(record_features)
        if len(keys) == batch_size:
            yield flush()


def _shard_stream(shards: list[str], captioner_parts, batch_size: int, max_pixels: int | None):
    """An IterableDataset in which each DataLoader worker reads and preprocesses its own subset of shards."""
    import torch.utils.data

    class ShardStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            mine = shards if info is None else shards[info.id :: info.num_workers]
            for shard in mine:
                yield from _read_and_preprocess(shard, captioner_parts, batch_size, max_pixels)

    return ShardStream()


@dataclass
class RecaptionSummary:
    shards_done: int = 0
    shards_skipped: int = 0
    shards_failed: int = 0
    records: int = 0
    captioned: int = 0
    errors: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.captioned / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"caption-shards: {self.shards_done} shards done, {self.shards_skipped} skipped, {self.shards_failed} "
            f"with tar errors; {self.records} records, {self.captioned} captioned, {self.errors} errors; "
            f"{self.images_per_second:.1f} images/s; {self.seconds:.1f}s"
        )


class _ShardState:
    def __init__(self):
        self.captions: dict[str, str] = {}
        self.alt_texts: dict[str, list[str]] = {}
        self.errors: list[dict] = []


def _write_shard(out_dir: Path, shard: str, state: _ShardState, output_key: str, extra_formats: tuple[str, ...]) -> None:
    paths = shard_outputs(out_dir, shard)
    with atomic_path(paths["errors"]) as tmp:
        tmp.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in state.errors), encoding="utf-8")
    rows = [{"key": k, "alt_texts": state.alt_texts.get(k, []), output_key: c} for k, c in state.captions.items()]
    if "jsonl" in extra_formats:
        with atomic_path(paths["jsonl"]) as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    if "parquet" in extra_formats:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with atomic_path(paths["parquet"]) as tmp:
            pq.write_table(pa.Table.from_pylist(rows), tmp)
    # The main output goes last: its existence marks the shard as done.
    atomic_write_json(paths["json"], {k: {output_key: c} for k, c in state.captions.items()})


def caption_shards(
    captioner: ShardCaptioner,
    shards: list[str],
    out_dir: str | os.PathLike,
    batch_size: int = 32,
    num_workers: int = 2,
    rank: int = 0,
    world_size: int = 1,
    extra_formats: tuple[str, ...] = (),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> RecaptionSummary:
    """Caption this rank's shards into `out_dir`, skipping shards whose `{shard}.json` already exists."""
    import torch.utils.data
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stems = [shard_stem(s) for s in shards]
    if len(set(stems)) != len(stems):
        raise ValueError("two shards share a file name; their outputs would collide in one folder")
    summary = RecaptionSummary()
    todo = []
    for shard in shards_for_rank(shards, rank, world_size):
        for stale in out.glob(f".{glob.escape(shard_stem(shard))}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by a killed run; never a visible output
        if shard_outputs(out, shard)["json"].exists():
            summary.shards_skipped += 1
        else:
            todo.append(shard)
    if summary.shards_skipped:
        logger.info("rank %d: skipping %d finished shards", rank, summary.shards_skipped)
    if not todo:
        summary.seconds = time.perf_counter() - start
        return summary

    loader = torch.utils.data.DataLoader(
        _shard_stream(todo, (captioner.preprocess, captioner.collate), batch_size, max_pixels),
        batch_size=None,
        num_workers=min(num_workers, len(todo)),
        prefetch_factor=4 if num_workers > 0 else None,
    )
    states: dict[str, _ShardState] = {}
    bar = tqdm(desc=f"caption-shards rank {rank}", unit="img", disable=not progress)

    def finish(shard: str, end: ShardEnd) -> None:
        state = states.pop(shard, None) or _ShardState()
        if end.error:
            state.errors.append({"key": None, "error": end.error})
            logger.error("%s: %s (records before it were captioned)", shard, end.error)
        _write_shard(out, shard, state, captioner.output_key, extra_formats)
        summary.shards_done += 1
        summary.shards_failed += end.error is not None
        summary.records += end.records
        summary.errors += len(state.errors)

    for item in loader:
        if isinstance(item, Batch):
            captions = captioner.generate(item.features)
            state = states.setdefault(item.shard, _ShardState())
            for key, alts, caption in zip(item.keys, item.alt_texts, captions, strict=True):
                state.captions[key] = caption
                state.alt_texts[key] = alts
            summary.captioned += len(item.keys)
            bar.update(len(item.keys))
            if on_batch is not None:
                on_batch(len(item.keys))
        elif isinstance(item, ShardEnd):
            finish(item.shard, item)
        else:
            logger.warning("%s:%s skipped: %s", item.shard, item.key, item.error)
            states.setdefault(item.shard, _ShardState()).errors.append({"key": item.key, "error": item.error})
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
