"""Wall and CPU time of pretraining the three toy backbones, against the demo's budget (about 120 s each
at the default settings on 2 cores, about 20 s each with --fast), with their quality numbers.

The machine is shared, so wall time is noisy; CPU seconds (all threads together) are the steadier number.

    python benchmarks/bench_backbones.py --toyworld /tmp/tw_bb            # default settings
    python benchmarks/bench_backbones.py --toyworld /tmp/tw_bb --fast
(generate the toy world first: hf-captioners toyworld --out /tmp/tw_bb --train 2000 --eval 500 --backbone 10000)
"""

from __future__ import annotations

import argparse
import logging
import tempfile

from hf_captioners.toyworld.backbones import pretrain_backbones

QUALITY = {
    "clip": ("recall_at_1", "recall_at_1_short", "zero_shot_color_acc", "zero_shot_shape_acc"),
    "lm": ("eval_perplexity", "eval_caption_perplexity"),
    "bart": ("eval_perplexity",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toyworld", required=True)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", nargs="+", default=("clip", "lm", "bart"))
    args = parser.parse_args()
    logging.basicConfig(level="WARNING")
    budget = 20.0 if args.fast else 120.0
    with tempfile.TemporaryDirectory() as out:
        metrics = pretrain_backbones(args.toyworld, out, fast=args.fast, only=tuple(args.only), threads=args.threads,
                                     progress=False)
    for name in args.only:
        m = metrics[name]
        quality = ", ".join(f"{k} {m[k]}" for k in QUALITY[name] if k in m)
        print(f"{name:5s} wall {m['seconds']:6.1f}s (budget {budget:.0f}s, ratio {m['seconds'] / budget:.2f}) "
              f"cpu {m['cpu_seconds']:6.1f}s threads {m['threads']} steps {m['steps']} | {quality}")


if __name__ == "__main__":
    main()
