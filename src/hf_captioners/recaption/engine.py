"""Re-captioning webdataset shards at scale: streaming, resumable, exactly once, never stopped by one bad record.

A shard's results become visible only when its main output `{shard}.json` (the original Altogether
format, `{key: {"<model>": caption}}`) is renamed into place, after its sidecars. So:
- a finished shard is skipped on restart, an unfinished one is redone from scratch;
- a `kill -9` at any moment leaves no torn file and, after a resumed run, exactly one caption per record.

A shard that cannot be read to its end (missing, empty, not a tar, truncated) is never finished: what was
readable goes to `{shard}.partial.json`, the shard counts as failed and the next run retries it, unless
`accept_partial` takes such shards as final. One bad record (unreadable image or json, a json of another
shape, a key seen twice) only costs that record: it is listed in `{shard}.errors.jsonl`.

Workers of a torch DataLoader read and preprocess whole shards while the main process generates;
each rank of a multi-process run takes `shards[rank::world_size]`, so ranks neither overlap nor leave gaps.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hf_captioners.altogether.image_utils import DEFAULT_MAX_PIXELS, ImageInputError, load_rgb_image
from hf_captioners.data.shards import (
    Record,
    ShardEnd,
    iter_shard_records,
)
from hf_captioners.io_utils import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

__all__ = [
    "RecaptionSummary",
    "ShardCaptioner",
    "caption_shard",
    "caption_shards",
    "check_outputs",
    "shard_outputs",
    "shards_for_rank",
]

class ShardCaptioner(Protocol):
    """What the engine needs from a model: per-record preprocessing (run in DataLoader workers),
    collation, and batched generation (run in the main process).

    `preprocess` is handed to the workers alone, so it should hold the processor, not the model.
    """

    output_key: str
    preprocess: Callable[[Any, list[str]], dict[str, Any]]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]: ...

    def generate(self, batch: dict[str, Any]) -> list[str]: ...


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
        "partial": out / f"{stem}.partial.json",
        "errors": out / f"{stem}.errors.jsonl",
        "jsonl": out / f"{stem}.jsonl",
        "parquet": out / f"{stem}.parquet",
    }


def check_outputs(shards: list[str], out_dir: str | os.PathLike) -> Path:
    """Fail before any work when two shards would write the same file or `out_dir` cannot hold outputs;
    create `out_dir`. Every rank checks all shards, so all ranks stop alike."""
    out = Path(out_dir)
    owners: dict[str, str] = {}
    for shard in shards:
        for path in shard_outputs(out, shard).values():
            other = owners.setdefault(path.name, shard)
            if other != shard:
                raise ValueError(f"shards {other!r} and {shard!r} would both write {path.name!r} in one output "
                                 f"folder: caption them into separate output folders, or rename one")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output folder {str(out)!r} is a file: pass a folder path (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create the output folder {str(out)!r} ({error.strerror or error}): "
                      f"pass a folder in a writable place") from error
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {str(out)!r} is not writable: pass a folder you can write to")
    return out


@dataclass
class Batch:
    """Up to `batch_size` preprocessed, collated records of one shard (one IPC message, not one per record)."""

    shard: str
    keys: list[str]
    alt_texts: list[list[str]]
    features: Any


def _collate(shard: str, pending: list[tuple[str, list[str], Any]], collate) -> list[Batch | Record]:
    """One batch; when collation fails, each record is tried alone so only those that break it are lost."""
    try:
        return [Batch(shard, [k for k, _, _ in pending], [a for _, a, _ in pending], collate([f for _, _, f in pending]))]
    except Exception:  # noqa: BLE001
        pass
    out: list[Batch | Record] = []
    good = []
    for key, alts, feature in pending:
        try:
            collate([feature])
            good.append((key, alts, feature))
        except Exception as error:  # noqa: BLE001
            out.append(Record(shard, key, alt_texts=alts, error=f"collation failed: {error!r}"))
    if good:
        try:
            out.append(Batch(shard, [k for k, _, _ in good], [a for _, a, _ in good], collate([f for _, _, f in good])))
        except Exception as error:  # noqa: BLE001
            out.extend(Record(shard, k, alt_texts=a, error=f"collation failed: {error!r}") for k, a, _ in good)
    return out


def _read_and_preprocess(shard: str, captioner_parts, batch_size: int, max_pixels: int | None):
    preprocess, collate = captioner_parts
    pending: list[tuple[str, list[str], Any]] = []

    def flush() -> list[Batch | Record]:
        items = _collate(shard, pending, collate)
        pending.clear()
        return items

    for item in iter_shard_records(shard):
        if isinstance(item, ShardEnd):
            if pending:
                yield from flush()
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
        except Exception as error:  # noqa: BLE001 - a preprocessing bug must not stop the shard
            yield Record(shard, item.key, alt_texts=item.alt_texts, error=f"preprocessing failed: {error!r}")
            continue
        pending.append((item.key, item.alt_texts, record_features))
        if len(pending) == batch_size:
            yield from flush()


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
    """`shards_done` counts shards finished now (`shards_partial` of them accepted although unreadable to their
    end); `shards_failed` counts shards left unfinished, to be retried by the next run."""

    shards_done: int = 0
    shards_skipped: int = 0
    shards_failed: int = 0
    shards_partial: int = 0
    records: int = 0
    captioned: int = 0
    errors: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.captioned / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        partial = f" ({self.shards_partial} partial, accepted)" if self.shards_partial else ""
        failed = " (unreadable; kept as .partial.json, retried by the next run)" if self.shards_failed else ""
        return (
            f"caption-shards: {self.shards_done} shards done{partial}, {self.shards_skipped} skipped, "
            f"{self.shards_failed} failed{failed}; {self.records} records, {self.captioned} captioned, "
            f"{self.errors} errors; {self.images_per_second:.1f} images/s; {self.seconds:.1f}s"
        )


class _ShardState:
    def __init__(self):
        self.captions: dict[str, str] = {}
        self.alt_texts: dict[str, list[str]] = {}
        self.errors: list[dict] = []
        self.duplicates: dict[str, int] = {}  # key -> samples with that key

    def drop_duplicates(self, shard: str) -> None:
        """A key held by several samples is ambiguous: none of its captions is kept, one error says why."""
        if not self.duplicates:
            return
        self.errors = [e for e in self.errors if e["key"] not in self.duplicates]
        for key, count in self.duplicates.items():
            self.captions.pop(key, None)
            self.alt_texts.pop(key, None)
            error = f"duplicate key: {count} samples of the tar share it, so none is captioned"
            logger.warning("%s:%s skipped: %s", shard, key, error)
            self.errors.append({"key": key, "shard": shard, "error": error})


def _write_errors(paths: dict[str, Path], state: _ShardState) -> None:
    with atomic_path(paths["errors"]) as tmp:
        tmp.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in state.errors), encoding="utf-8")


def _write_shard(out_dir: Path, shard: str, state: _ShardState, output_key: str, extra_formats: tuple[str, ...]) -> None:
    paths = shard_outputs(out_dir, shard)
    _write_errors(paths, state)
    rows = [
        {"key": k, "alt_texts": state.alt_texts.get(k, []), "no_alt_text": not state.alt_texts.get(k), output_key: c}
        for k, c in state.captions.items()
    ]
    if "jsonl" in extra_formats:
        with atomic_path(paths["jsonl"]) as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    if "parquet" in extra_formats:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # explicit types: a shard whose records all lack alt-text would otherwise get a list<null> column
        schema = pa.schema([("key", pa.string()), ("alt_texts", pa.list_(pa.string())), ("no_alt_text", pa.bool_()),
                            (output_key, pa.string())])
        with atomic_path(paths["parquet"]) as tmp:
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    paths["partial"].unlink(missing_ok=True)  # left by an earlier run that could not read the shard to its end
    # The main output goes last: its existence marks the shard as done.
    atomic_write_json(paths["json"], {k: {output_key: c} for k, c in state.captions.items()})


def _write_partial(out_dir: Path, shard: str, state: _ShardState, output_key: str) -> None:
    """The readable part of an unfinished shard: kept for inspection, never taken for a finished shard."""
    paths = shard_outputs(out_dir, shard)
    _write_errors(paths, state)
    atomic_write_json(paths["partial"], {k: {output_key: c} for k, c in state.captions.items()})


def _remove_stale_temporaries(out: Path, shards: list[str]) -> None:
    """Delete the temporaries a killed run left for these shards' outputs (never visible outputs), and only
    those: other ranks write theirs in the same folder. One listing of the folder, however many shards."""
    names = {path.name for shard in shards for path in shard_outputs(out, shard).values()}
    with os.scandir(out) as entries:
        for entry in entries:
            # io_utils.atomic_path names them `.{name}.{random}.tmp`; mkstemp's random part has no dot
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                if entry.name[1:-4].rsplit(".", 1)[0] in names:
                    Path(entry.path).unlink(missing_ok=True)


class _ShardCommitter:
    """Turns a stream of `Batch`/`Record`/`ShardEnd` items (any shards, interleaved) into captions and commits each
    shard when its end arrives. Shared by every engine so that a shard is written, and counted, one way only."""

    def __init__(self, out: Path, captioner: ShardCaptioner, summary: RecaptionSummary,
                 extra_formats: tuple[str, ...], accept_partial: bool):
        self.out, self.captioner, self.summary = out, captioner, summary
        self.extra_formats, self.accept_partial = extra_formats, accept_partial
        self.states: dict[str, _ShardState] = {}

    def take(self, item: Batch | Record | ShardEnd) -> int:
        """Handle one item; return how many records it captioned."""
        if isinstance(item, Batch):
            captions = self.captioner.generate(item.features)
            state = self.states.setdefault(item.shard, _ShardState())
            for key, alts, caption in zip(item.keys, item.alt_texts, captions, strict=True):
                state.captions[key] = caption
                state.alt_texts[key] = alts
            return len(item.keys)
        if isinstance(item, ShardEnd):
            self.finish(item.shard, item)
        elif item.duplicate:
            state = self.states.setdefault(item.shard, _ShardState())
            state.duplicates[item.key] = state.duplicates.get(item.key, 1) + 1
        else:
            logger.warning("%s:%s skipped: %s", item.shard, item.key, item.error)
            self.states.setdefault(item.shard, _ShardState()).errors.append(
                {"key": item.key, "shard": item.shard, "error": item.error})
        return 0

    def finish(self, shard: str, end: ShardEnd) -> None:
        out, summary, output_key = self.out, self.summary, self.captioner.output_key
        state = self.states.pop(shard, None) or _ShardState()
        state.drop_duplicates(shard)
        if end.error:
            state.errors.append({"key": None, "shard": shard, "error": end.error})
        if end.error is None or (self.accept_partial and end.opened):
            if end.error:
                logger.error("%s: %s; accepted as finished with its %d readable captions (--accept-partial)",
                             shard, end.error, len(state.captions))
            _write_shard(out, shard, state, output_key, self.extra_formats)
            summary.shards_done += 1
            summary.shards_partial += end.error is not None
        else:
            _write_partial(out, shard, state, output_key)
            logger.error("%s: %s; not finished: its %d readable captions are in %s, the next run retries it "
                         "(or takes it as it is with --accept-partial)", shard, end.error, len(state.captions),
                         shard_outputs(out, shard)["partial"].name)
            summary.shards_failed += 1
        summary.records += end.records
        summary.captioned += len(state.captions)
        summary.errors += len(state.errors)


def caption_shard(
    captioner: ShardCaptioner,
    shard: str,
    out_dir: str | os.PathLike,
    batch_size: int = 32,
    extra_formats: tuple[str, ...] = (),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    accept_partial: bool = False,
    remove_temporaries: bool = False,
) -> RecaptionSummary:
    """One shard read, preprocessed and captioned in this process, then committed exactly as `caption_shards`
    commits it: the unit of work for engines that schedule shards themselves (see `recaption_ray`).

    A shard whose `{shard}.json` exists is skipped, so a shard handed out twice is still written once.
    `remove_temporaries` clears what an earlier, killed attempt at this shard left behind.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    summary = RecaptionSummary()
    if shard_outputs(out, shard)["json"].exists():
        summary.shards_skipped = 1
    else:
        if remove_temporaries:
            _remove_stale_temporaries(out, [shard])
        committer = _ShardCommitter(out, captioner, summary, extra_formats, accept_partial)
        for item in _read_and_preprocess(shard, (captioner.preprocess, captioner.collate), batch_size, max_pixels):
            committer.take(item)
    summary.seconds = time.perf_counter() - start
    return summary


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
    accept_partial: bool = False,
) -> RecaptionSummary:
    """Caption this rank's shards into `out_dir`, skipping shards whose `{shard}.json` already exists.

    A shard that cannot be read to its end is written as `{shard}.partial.json` and retried by the next run;
    `accept_partial=True` takes such a shard (if its file could be opened) as finished instead.
    """
    import torch.utils.data
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = check_outputs(shards, out_dir)
    summary = RecaptionSummary()
    mine = shards_for_rank(shards, rank, world_size)
    _remove_stale_temporaries(out, mine)
    todo = []
    for shard in mine:
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
    committer = _ShardCommitter(out, captioner, summary, extra_formats, accept_partial)
    bar = tqdm(desc=f"caption-shards rank {rank}", unit="img", disable=not progress)
    for item in loader:
        captioned = committer.take(item)
        if captioned:
            bar.update(captioned)
            if on_batch is not None:
                on_batch(captioned)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
