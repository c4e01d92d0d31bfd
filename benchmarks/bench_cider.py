"""CIDEr-D end to end (tokenize + score): hf_captioners vs pycocoevalcap (Java PTBTokenizer + Cider), same
machine, same run, same data: 5,000 images x 5 references of synthetic COCO-like captions with punctuation,
numbers, contractions and quotes. Prints both times, the speed-up, and the largest per-image difference.

    .venv/bin/python benchmarks/bench_cider.py [--images 5000] [--refs 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import random
import time

SUBJECTS = ["A man", "Two women", "A small dog", "The child's kite", "A red double-decker bus", "Three zebras",
            "A woman in a blue T-shirt", "An old man", "A group of people", "A black-and-white cat", "The chef"]
VERBS = ["is riding", "sits on", "stands next to", "isn't looking at", "holds", "walks along", "is eating",
         "plays with", "looks at", "is parked near", "jumps over"]
OBJECTS = ["a wave", "the beach", "a wooden bench", "a pizza with 8 slices", "a 3-story building", "the \"big\" clock",
           "a laptop (open)", "a frisbee", "2 surfboards", "the train station", "a plate of food", "a stop sign"]
TAILS = ["", ".", " at 5 p.m.", ", smiling.", " on a sunny day.", " in the U.S.", "; it's raining.", " -- near a tree",
         " while it snows!", " at Joe's café.", "..."]


def caption(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--refs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as JavaPTBTokenizer

    from hf_captioners.metrics import cider_d
    from hf_captioners.metrics.cider import ptb_tokenizer

    rng = random.Random(0)
    preds = [caption(rng) for _ in range(args.images)]
    refs = [[caption(rng) for _ in range(args.refs)] for _ in range(args.images)]

    ours_times, theirs_times = [], []
    for _ in range(args.repeats):
        ptb_tokenizer._DEFAULT = ptb_tokenizer.PTBTokenizer()  # cold: no tokenization reused from a previous repeat
        start = time.perf_counter()
        ours = cider_d(preds, refs)
        ours_times.append(time.perf_counter() - start)

        start = time.perf_counter()
        tok = JavaPTBTokenizer()
        gts = tok.tokenize({i: [{"caption": r} for r in rs] for i, rs in enumerate(refs)})
        res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(preds)})
        theirs_score, theirs_scores = Cider().compute_score(gts, res)
        theirs_times.append(time.perf_counter() - start)

    # where our time goes (cold tokenizer again)
    from hf_captioners.metrics.cider.cider_d import CiderD

    tok_ours = ptb_tokenizer.PTBTokenizer()
    start = time.perf_counter()
    ids = tok_ours.word_ids([c for p, rs in zip(preds, refs) for c in (p, *rs)])  # the path cider_d takes
    tokenize_t = time.perf_counter() - start
    start = time.perf_counter()
    CiderD().compute_ids(ids, [len(r) for r in refs])
    score_t = time.perf_counter() - start

    ours_t, theirs_t = min(ours_times), min(theirs_times)
    diff = float(np.max(np.abs(np.asarray(ours["scores"]) - theirs_scores)))
    print(f"data: {args.images} images x {args.refs} references; best of {args.repeats}")
    print(f"pycocoevalcap (Java tokenizer + Cider): {theirs_t:.3f} s   CIDEr-D {theirs_score:.6f}")
    print(f"hf_captioners cider_d (cold cache):     {ours_t:.3f} s   CIDEr-D {ours['cider_d']:.6f}")
    print(f"  of which: tokenize {tokenize_t:.3f} s, score {score_t:.3f} s")
    print(f"speed-up: {theirs_t / ours_t:.1f}x   max |per-image difference|: {diff:.2e}")
    print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
