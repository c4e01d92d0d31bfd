"""Webdataset shards as this project reads them: shard specs, and one `Record` per tar sample, never stopped by a bad
one.

MetaCLIP's layout: `{key}.jpg` (or .jpeg/.png/.webp) + `{key}.json` holding `{"texts": [[source, alt-text], ...]}`
(or `{key}.txt`). The re-captioning engine and the web page's batch tab read tars through `iter_shard_records`;
training streams them with `datasets`' webdataset builder and parses the same json with `alt_texts_from_metadata`.
"""

from __future__ import annotations

import glob
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hf_captioners.data.alt_text import alt_texts_from_metadata, prepare_alt_texts

__all__ = ["IMAGE_EXTENSIONS", "Record", "ShardEnd", "alt_texts_of_sample", "expand_shard_specs", "iter_shard_records"]

IMAGE_EXTENSIONS = ("jpeg", "jpg", "png", "webp")


def expand_shard_specs(specs: str | Iterable[str]) -> list[str]:
    """Brace patterns (`a-{000..099}.tar`), globs, plain paths and `@list.txt` files → ordered unique paths.

    A glob or brace pattern that matches no file at all is a mistake in the command, not a run of failed shards;
    a missing plain path is left to the run (it fails and is retried).
    """
    import braceexpand

    specs = [specs] if isinstance(specs, str) else list(specs)
    paths: list[str] = []
    for spec in specs:
        if spec.startswith("@"):
            try:
                lines = Path(spec[1:]).read_text().splitlines()
            except OSError as error:
                raise FileNotFoundError(f"shard list {spec[1:]!r} cannot be read ({error.strerror or error}): "
                                        f"@FILE must name a text file with one shard path or pattern per line") from error
            paths.extend(expand_shard_specs([line.strip() for line in lines if line.strip()]))
            continue
        expanded_paths = []
        for expanded in braceexpand.braceexpand(spec):
            if glob.has_magic(expanded):
                matches = sorted(glob.glob(expanded))
                if not matches:
                    raise FileNotFoundError(f"shard pattern {expanded!r} matches no file: check the folder and the "
                                            f"name (quote patterns so that the shell leaves them alone)")
                expanded_paths.extend(matches)
            else:
                expanded_paths.append(expanded)
        if len(expanded_paths) > 1 and not any(os.path.exists(path) for path in expanded_paths):
            raise FileNotFoundError(f"shard pattern {spec!r} matches no file (none of its {len(expanded_paths)} "
                                    f"paths exists): check the folder and the numbering")
        paths.extend(expanded_paths)
    seen, unique = set(), []
    for path in paths:
        if path not in seen:
            seen.add(path)
            unique.append(path)
    if not unique:
        raise ValueError(f"no shards in {specs}: pass shard paths, patterns or a non-empty @list file")
    return unique


@dataclass
class Record:
    """One tar sample. Empty `alt_texts` is a record without alt-text (captioned with an empty prompt)."""

    shard: str
    key: str
    image_bytes: bytes | None = None
    alt_texts: list[str] = field(default_factory=list)
    error: str | None = None
    duplicate: bool = False  # a later sample with a key seen before in the same tar


@dataclass
class ShardEnd:
    """The end of one shard. `error` set: the shard was not read to its end (`opened` False: not even opened)."""

    shard: str
    records: int
    error: str | None = None
    opened: bool = True


def alt_texts_of_sample(sample: dict[str, bytes]) -> list[str]:
    """A webdataset sample's alt-texts: its `json` (MetaCLIP's metadata, see `alt_texts_from_metadata`), else
    its `txt`; neither is a record without alt-text ([])."""
    if "json" in sample:
        return alt_texts_from_metadata(json.loads(sample["json"].decode("utf-8")))
    if "txt" in sample:
        return prepare_alt_texts([sample["txt"].decode("utf-8")])
    return []


def _make_record(shard: str, key: str, sample: dict[str, bytes]) -> Record:
    record = Record(shard, key)
    if "__too_big__" in sample:
        record.error = sample["__too_big__"]
        return record
    try:
        record.alt_texts = alt_texts_of_sample(sample)
    except Exception as error:  # noqa: BLE001 - whatever the json holds, it is this record's problem only
        record.error = f"unreadable alt-text: {error}"
    image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in sample), None)
    if image_ext is None:
        record.error = "missing image" if record.error is None else f"missing image; {record.error}"
    else:
        record.image_bytes = sample[image_ext]
    return record


class _EndCheckingTarInfo(tarfile.TarInfo):
    """Notes why the member headers ended. tarfile takes a missing, cut or garbled header after the first member
    for the normal end of the archive, so a shard cut at a member boundary (an interrupted copy) would pass as
    complete with fewer records; only a zero block (the end-of-archive marker) is a real end."""

    @classmethod
    def fromtarfile(cls, tarfile_):
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.EOFHeaderError:
            tarfile_.end_error = None
            raise
        except tarfile.EmptyHeaderError:
            tarfile_.end_error = "the tar stops without its end-of-archive blocks (cut at a member boundary)"
            raise
        except tarfile.HeaderError as error:
            tarfile_.end_error = f"bad member header ({error})"
            raise


def iter_shard_records(shard: str, max_member_bytes: int | None = None) -> Iterator[Record | ShardEnd]:
    """Yield one `Record` per tar sample (with `error` set when it is unusable), then a `ShardEnd`.

    `max_member_bytes`: a larger member is not read, and its sample is an error (uploads to a web page).
    A tar that cannot be read to its end yields `ShardEnd.error`; the records read before it still come, except
    the last, which may have lost members. A key seen before in the same tar comes as a `duplicate` error.
    """
    from webdataset.tariterators import base_plus_ext

    count, seen = 0, set()
    current_key, sample = None, {}

    def flush() -> Record:
        nonlocal count
        count += 1
        if current_key in seen:
            return Record(shard, current_key, error="duplicate key in the tar", duplicate=True)
        seen.add(current_key)
        try:
            return _make_record(shard, current_key, sample)
        except Exception as error:  # noqa: BLE001 - one record's problem only
            return Record(shard, current_key, error=f"unreadable record: {error!r}")

    try:
        handle = open(shard, "rb")  # noqa: SIM115 - closed below; an open failure is told apart from a bad tar
    except OSError as error:
        yield ShardEnd(shard, 0, error=f"cannot open the shard: {error.strerror or error}", opened=False)
        return
    try:
        with handle, tarfile.open(fileobj=handle, mode="r|*", tarinfo=_EndCheckingTarInfo) as stream:
            for info in stream:
                if not info.isreg():
                    continue
                prefix, suffix = base_plus_ext(info.name)
                if prefix is None:
                    continue
                suffix = suffix.lower()
                if max_member_bytes is not None and info.size > max_member_bytes:
                    data, suffix = f"{info.name}: {info.size} bytes, over the member limit", "__too_big__"
                else:
                    data = stream.extractfile(info).read()
                if current_key is not None and (prefix != current_key or suffix in sample):
                    yield flush()  # a suffix seen twice is a second sample with the same key
                    sample = {}
                current_key = prefix
                sample[suffix] = data
            end_error = getattr(stream, "end_error", None)
        if end_error is not None:
            raise tarfile.ReadError(end_error)
        if current_key is not None:
            yield flush()
        yield ShardEnd(shard, count)
    except Exception as error:  # noqa: BLE001 - tarfile, zlib and OS errors alike end the shard, never the run
        where = f"after key {current_key!r}" if current_key else "before the first record"
        if current_key is not None and sample:
            count += 1
            yield Record(shard, current_key, error=f"record cut off by a truncated tar: {error}")
        yield ShardEnd(shard, count, error=f"corrupt or truncated tar {where}: {error}")
