"""CIDEr-D end to end (PTB tokenization + scoring): hf_captioners vs pycocoevalcap (its Java PTBTokenizer + Cider),
same machine, same run, same data, on two realistic sets:

- COCO-like: 5,000 images x 5 references of ~10 words (5-25), predictions of the same kind;
- dense: 2,000 images x 1 reference of ~60 words (30-100, as Altogether-FT's), predictions of the same kind.

Texts are drawn from a seeded vocabulary of 4,000 word forms with Zipfian frequencies (function words, nouns,
colours, numbers, names, hyphenated and possessive forms), sentence-initial capitals, commas, quotes,
parentheses, contractions and final punctuation; a prediction shares part of its wording with one of its
references, as a captioner's does. The JVM start-up of pycocoevalcap (two `java` calls per evaluation) is
measured separately (an evaluation of one caption) and reported beside the end-to-end figure.

    .venv/bin/python benchmarks/bench_cider.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import random
import time

from _report import record

FUNCTION = ["a", "the", "of", "on", "in", "with", "and", "is", "are", "to", "at", "next", "near", "two", "an", "its",
            "some", "there", "while", "from", "by", "under", "over", "behind", "three", "large", "small", "white"]
COLOURS = ["red", "blue", "green", "yellow", "black", "orange", "purple", "brown", "grey", "pink", "silver", "golden"]
PUNCT_TAILS = ["", ".", ".", ".", "!", "...", " .", "?"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    onsets = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "cl", "st",
              "tr", "sh", "ch", "pl", "gr", "sp", "th", "fr"]
    vowels = ["a", "e", "i", "o", "u", "ea", "ou", "ai", "io", "y"]
    codas = ["", "n", "r", "s", "t", "l", "ck", "ng", "st", "rd", "m", "x"]
    words = set()
    while len(words) < size:
        word = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.choice((1, 2, 2, 3))))
        roll = rng.random()
        if roll < 0.04:
            word = f"{word}-{rng.choice(COLOURS)}"  # hyphenated
        elif roll < 0.07:
            word += "'s"  # possessive
        elif roll < 0.10:
            word = word.capitalize()  # names
        elif roll < 0.12:
            word = str(rng.randint(2, 1990))  # numbers
        words.add(word)
    return sorted(words)


class Sampler:
    def __init__(self, seed: int = 0, size: int = 4000):
        self.rng = random.Random(seed)
        self.content = vocabulary(self.rng, size)
        self.weights = [1.0 / (rank + 1) ** 1.07 for rank in range(len(self.content))]  # Zipf
        self.rng.shuffle(self.weights)

    def word(self) -> str:
        roll = self.rng.random()
        if roll < 0.38:
            return self.rng.choice(FUNCTION)
        if roll < 0.45:
            return self.rng.choice(COLOURS)
        return self.rng.choices(self.content, self.weights)[0]

    def sentence(self, mean: float, low: int, high: int) -> str:
        n = max(low, min(high, round(self.rng.gauss(mean, mean / 4))))
        words = [self.word() for _ in range(n)]
        for _ in range(n // 12):  # commas, quotes, parentheses, contractions
            i = self.rng.randrange(1, n)
            kind = self.rng.random()
            if kind < 0.5:
                words[i - 1] += ","
            elif kind < 0.7:
                words[i] = f'"{words[i]}"'
            elif kind < 0.85:
                words[i] = f"({words[i]})"
            else:
                words[i] = self.rng.choice(["isn't", "it's", "there's", "don't", "they're"])
        return " ".join(words)[0].upper() + " ".join(words)[1:] + self.rng.choice(PUNCT_TAILS)

    def prediction(self, reference: str, mean: float, low: int, high: int) -> str:
        """Half of a reference's words in order, the rest fresh: partial agreement, as a captioner's."""
        kept = [w for w in reference.split() if self.rng.random() < 0.5]
        fresh = self.sentence(mean / 2, max(1, low // 2), high).split()
        mixed = kept + fresh
        self.rng.shuffle(mixed) if self.rng.random() < 0.3 else None
        return " ".join(mixed)


def make_set(seed: int, images: int, refs: int, mean: float, low: int, high: int):
    sampler = Sampler(seed)
    references = [[sampler.sentence(mean, low, high) for _ in range(refs)] for _ in range(images)]
    predictions = [sampler.prediction(sampler.rng.choice(r), mean, low, high) for r in references]
    return predictions, references


def java_cider(predictions, references):
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": r} for r in rs] for i, rs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    return Cider().compute_score(gts, res)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the images (a quicker look)")
    args = parser.parse_args()

    import numpy as np

    from hf_captioners.metrics import cider_d
    from hf_captioners.metrics.cider import ptb_tokenizer

    start = time.perf_counter()
    java_cider(["a dog ."], [["a dog runs ."]])
    jvm = (time.perf_counter() - start) / 2  # the evaluation of one caption makes two java calls
    for name, (images, refs, mean, low, high) in {"COCO-like": (5000, 5, 10.5, 5, 25),
                                                   "dense (60 words)": (2000, 1, 60, 30, 100)}.items():
        images = max(10, int(images * args.scale))
        predictions, references = make_set(1, images, refs, mean, low, high)
        words = {w for rs in references for r in rs for w in r.lower().split()}
        ours_t, theirs_t = [], []
        for _ in range(args.repeats):
            ptb_tokenizer._DEFAULT = ptb_tokenizer.PTBTokenizer()  # cold: nothing reused from the previous repeat
            t0 = time.perf_counter()
            ours = cider_d(predictions, references)
            ours_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            theirs_score, theirs_scores = java_cider(predictions, references)
            theirs_t.append(time.perf_counter() - t0)
        ours_best, theirs_best = min(ours_t), min(theirs_t)
        diff = float(np.max(np.abs(np.asarray(ours["scores"]) - np.asarray(theirs_scores))))
        speedup = theirs_best / ours_best
        print(f"{name}: {images} images x {refs} refs, {len(words):,} distinct word forms in the references; best of {args.repeats}")
        print(f"  pycocoevalcap: {theirs_best:.3f} s (of which JVM start-up about {2 * jvm:.2f} s: two java calls)   CIDEr-D {theirs_score:.6f}")
        print(f"  hf_captioners: {ours_best:.3f} s   CIDEr-D {ours['cider_d']:.6f}   max |per-image difference| {diff:.1e}")
        print(f"  speed-up {speedup:.1f}x end to end; {(theirs_best - 2 * jvm) / ours_best:.1f}x without the JVM start-up")
        record(f"CIDEr-D vs pycocoevalcap, {name}", speedup, ">= 20x", speedup >= 20, "x")
        record(f"CIDEr-D max per-image difference, {name}", diff, "<= 1e-9", diff <= 1e-9)
    print(f"JVM start-up (one java call): {jvm:.2f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
