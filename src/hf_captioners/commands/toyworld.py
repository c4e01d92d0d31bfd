"""`hf-captioners toyworld --out DIR`: generate the toy world and print its statistics."""

from __future__ import annotations

import argparse
import json

FORMAT_CHOICES = ("ft", "shards", "coco", "hf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--train", type=int, default=20000, help="captioner training images")
    parser.add_argument("--eval", type=int, default=500, help="evaluation images (names disjoint from train)")
    parser.add_argument("--backbone", type=int, default=10000, help="images for pretraining the toy backbones")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--formats", default=",".join(FORMAT_CHOICES), help=f"comma-separated subset of {FORMAT_CHOICES}")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per webdataset tar")
    parser.add_argument("--held-out", default="gray", help="comma-separated colours/shapes kept out of the train split")
    parser.add_argument("--workers", type=int, default=None, help="generator processes (default: CPU count, at most 4)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from hf_captioners.toyworld import ToyWorldConfig, generate_toyworld

    formats = tuple(f for f in args.formats.split(",") if f)
    bad = [f for f in formats if f not in FORMAT_CHOICES]
    if bad:
        raise SystemExit(f"--formats: unknown {bad}; choose from {FORMAT_CHOICES}")
    held_out = tuple(c for c in args.held_out.split(",") if c)
    config = ToyWorldConfig(seed=args.seed, image_size=args.image_size, held_out=held_out)
    summary = generate_toyworld(
        args.out,
        splits={"train": args.train, "eval": args.eval, "backbone": args.backbone},
        config=config,
        formats=formats,
        shard_size=args.shard_size,
        workers=args.workers,
        progress=not args.no_progress,
    )
    for split, stats in summary["splits"].items():
        print(f"{split:9s} " + json.dumps(stats))
    total = sum(s["examples"] for s in summary["splits"].values())
    print(f"toyworld: {total} images in {len(summary['files'])} files under {args.out} in {summary['seconds']}s")
    return 0
