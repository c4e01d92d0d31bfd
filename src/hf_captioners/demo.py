"""`hf-captioners demo`: the project's main job on its embedded default, the toy world.

Stages run in order and each writes under `--out`; the summary table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

FAST_SPLITS = {"train": 2000, "eval": 200, "backbone": 1000}
FULL_SPLITS = {"train": 20000, "eval": 500, "backbone": 10000}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results", help="output folder")
    parser.add_argument("--fast", action="store_true", help="a small smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")


def _stats_table(summary: dict) -> str:
    rows = ["| split | images | empty alt | junk alt | alt with name | wrong attribute | held-out images |", "|---|---|---|---|---|---|---|"]
    for split, s in summary["splits"].items():
        rows.append(
            f"| {split} | {s['examples']} | {s['rate_alt_empty']:.1%} | {s['rate_alt_junk_only']:.1%} | "
            f"{s['rate_alt_with_name']:.1%} | {s['rate_alt_with_wrong_attribute']:.1%} | {s['images_with_held_out_concept']} |"
        )
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from .io_utils import atomic_write_json, atomic_write_text
    from .toyworld import ToyWorldConfig, generate_toyworld

    start = time.perf_counter()
    out = Path(args.out)
    splits = FAST_SPLITS if args.fast else FULL_SPLITS
    world = generate_toyworld(out / "toyworld", splits=splits, config=ToyWorldConfig(seed=args.seed), progress=not args.no_progress)
    table = _stats_table(world)
    atomic_write_text(out / "toyworld_stats.md", table + "\n")
    atomic_write_json(out / "results.json", {"toyworld": world["splits"]}, indent=1)
    print(table)
    print(json.dumps({"toyworld_seconds": world["seconds"]}))
    print(f"demo: toy world of {sum(splits.values())} images under {out} in {time.perf_counter() - start:.1f}s")
    return 0
