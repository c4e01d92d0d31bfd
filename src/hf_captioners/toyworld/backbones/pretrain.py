"""Pretrain all three toy backbones in one go: `out_dir/{clip,lm,bart}/` plus `out_dir/metrics.json`."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["BACKBONES", "pretrain_backbones"]

BACKBONES = ("clip", "lm", "bart")


def pretrain_backbones(
    toyworld_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    fast: bool = False,
    seed: int = 0,
    only: tuple[str, ...] = BACKBONES,
    threads: int | None = None,
    progress: bool = True,
    **overrides,
) -> dict:
    """Run the CLIP, causal-LM and BART recipes (each with its defaults, or its `fast` smoke settings; any of
    `steps`, `batch_size`, `limit`, `eval_limit` in `overrides` go to every recipe) and write their metrics
    to `out_dir/metrics.json`, keeping the entries of backbones not run this time (so `only=("bart",)` can
    run after the others; not at the same time as another run into `out_dir`, whose entry it could drop). Returns {"clip": {...}, "lm": {...}, "bart": {...}} for those run."""
    import json

    from hf_captioners.io_utils import atomic_write_json
    from hf_captioners.toyworld.backbones.bart import pretrain_bart
    from hf_captioners.toyworld.backbones.causal_lm import pretrain_causal_lm
    from hf_captioners.toyworld.backbones.clip import pretrain_clip

    unknown = set(only) - set(BACKBONES)
    if unknown:
        raise ValueError(f"unknown backbones {sorted(unknown)}; choose from {BACKBONES}")
    recipes = {"clip": pretrain_clip, "lm": pretrain_causal_lm, "bart": pretrain_bart}
    out = Path(out_dir)
    start = time.perf_counter()
    metrics: dict = {}
    for name in BACKBONES:
        if name in only:
            logger.info("pretraining %s (fast=%s) into %s", name, fast, out / name)
            metrics[name] = recipes[name](
                toyworld_root, out / name, seed=seed, fast=fast, threads=threads, progress=progress, **overrides
            )
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    metrics["fast"] = fast
    path = out / "metrics.json"
    earlier = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    kept = {name: earlier[name] for name in BACKBONES if name in earlier and name not in metrics}
    atomic_write_json(path, {**kept, **metrics}, indent=1)
    return metrics
