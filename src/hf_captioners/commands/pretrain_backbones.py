"""`hf-captioners pretrain-backbones`: the toy CLIP, causal LM and BART that the captioners stand on."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--toyworld", required=True, help="toy-world root (needs the backbone and eval splits)")
    parser.add_argument("--out", required=True, help="output folder; gets clip/, lm/, bart/ and metrics.json")
    parser.add_argument("--fast", action="store_true", help="smoke-test sizes: a few seconds per backbone")
    parser.add_argument("--only", nargs="+", choices=("clip", "lm", "bart"), default=("clip", "lm", "bart"))
    parser.add_argument("--steps", type=int, default=None, help="training steps of each backbone (default: its recipe's)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N backbone-split images' texts")
    parser.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N eval-split images' texts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 1: faster on a shared 2-core machine)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from hf_captioners.toyworld.backbones.pretrain import pretrain_backbones

    m = pretrain_backbones(
        args.toyworld, args.out, fast=args.fast, seed=args.seed, only=tuple(args.only), threads=args.threads,
        progress=not args.no_progress,
        **{k: v for k, v in (("steps", args.steps), ("limit", args.limit), ("eval_limit", args.eval_limit)) if v is not None},
    )
    parts = []
    if "clip" in m:
        c = m["clip"]
        parts.append(f"clip R@1 {c['recall_at_1']:.3f} (chance {c['chance_dense']:.3f}) in {c['seconds']:.0f}s")
    if "lm" in m:
        parts.append(f"lm eval ppl {m['lm']['eval_perplexity']:.2f} in {m['lm']['seconds']:.0f}s")
    if "bart" in m:
        b = m["bart"]
        parts.append(f"bart eval ppl {b['eval_perplexity']:.2f}, table copy rate {b['table_copy_rate']} in {b['seconds']:.0f}s")
    print(f"pretrain-backbones: {'; '.join(parts)}; total {m['seconds']:.0f}s -> {args.out}")
    return 0
