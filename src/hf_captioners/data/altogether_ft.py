"""Altogether-FT json (`{"data": [{"alt", "round3", "img_path", ...}]}`: the human re-aligned captions), one reader
for evaluation and for the FT stage of `examples/train_altogether.py`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hf_captioners.data import log_skip, read_json

__all__ = ["as_dataset", "read_altogether_ft"]


def read_altogether_ft(path, skip: Callable[[str, str], None] = log_skip) -> list[dict]:
    """The file's records that have a non-empty `round3` caption and an `img_path`, as they are; the others are
    reported with `skip(key, reason)`. A file of another shape raises ValueError naming it."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path}: an Altogether-FT file must be a JSON object with a 'data' list")
    records = []
    for index, record in enumerate(data["data"]):
        key = str(record.get("key", index)) if isinstance(record, dict) else str(index)
        if not isinstance(record, dict):
            skip(key, f"NotARecord: a {type(record).__name__}, not an object")
        elif not isinstance(record.get("round3"), str) or not record["round3"].strip():
            skip(key, "MissingField: no 'round3' caption")
        elif not isinstance(record.get("img_path"), str) or not record["img_path"]:
            skip(key, "MissingField: no 'img_path'")
        else:
            records.append(record)
    return records


def as_dataset(records: list[dict]):
    """The records as a `datasets.Dataset`, every field any record has as a column (None where a record lacks it)."""
    import datasets

    fields = list(dict.fromkeys(name for record in records for name in record))
    return datasets.Dataset.from_dict({name: [record.get(name) for record in records] for name in fields})
