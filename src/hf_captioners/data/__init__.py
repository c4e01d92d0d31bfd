"""Data formats, one reader each: webdataset shards (`shards.py`), Altogether-FT json (`altogether_ft.py`), COCO
and Karpathy caption json (`coco.py`), and the alt-text rules every reader shares (`alt_text.py`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def log_skip(key: str, reason: str) -> None:
    """The readers' default for a skipped record; training passes `BadRecords.skip`, which also counts it."""
    logger.warning("skipping record %s: %s", key, reason)


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
