"""CIDEr-D exactly as pycocoevalcap computes it, vectorised with numpy.

Definition (pycocoevalcap `cider_scorer.py`): n-grams n=1..4 of whitespace-split tokens; document frequency of
an n-gram = number of images whose reference set contains it (over the evaluated set only); weight =
tf * (log(#images) - log(max(1, df))); per n, the hypothesis/reference similarity is
sum_g min(h_g, r_g) * r_g / (|h| |r|), times exp(-delta^2 / (2 sigma^2)); averaged over n and over the
references, times 10. Its "length" is the number of bigram occurrences, max(#tokens - 1, 0), not the
number of tokens; that quirk is kept so scores match to float precision.

Instead of per-pair Python dicts, every n-gram of every sentence is packed into one integer key, and term
frequencies, document frequencies, norms and clipped dot products become sorts and bincounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

__all__ = ["CiderD", "cider_d_from_tokens", "validate_inputs"]


def validate_inputs(predictions, references) -> tuple[list[str], list[list[str]]]:
    """Check types and shapes; accept a single string as a one-reference list. Errors name the record."""
    if isinstance(predictions, str) or not isinstance(predictions, Sequence):
        raise TypeError(f"predictions must be a list of strings, got {type(predictions).__name__}")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(f"references must be a list of lists of strings, got {type(references).__name__}")
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} reference lists; they must match")
    refs_out = []
    for i, (pred, refs) in enumerate(zip(predictions, references)):
        if not isinstance(pred, str):
            raise TypeError(f"prediction {i} must be a str, got {type(pred).__name__}: {pred!r}")
        if isinstance(refs, str):
            refs = [refs]
        if not isinstance(refs, Sequence) or len(refs) == 0:
            raise ValueError(f"references of example {i} must be a non-empty list of strings, got {refs!r}")
        for j, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise TypeError(f"reference {j} of example {i} must be a str, got {type(ref).__name__}: {ref!r}")
        refs_out.append(list(refs))
    return list(predictions), refs_out


def _ngram_keys(sentences: list[list[str]], n_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer keys of every n-gram (n <= n_max) of every sentence, rows in sentence order.

    Returns (keys, sentence index, n) per row. Keys are equal iff the n-grams are equal.
    """
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    words = list(chain.from_iterable(sentences))
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words), 1)}
    # sentences end to end, each followed by n_max zeros' worth of separation: windows with a 0 are invalid
    total = len(words) + len(sentences)
    seq = np.zeros(total + n_max, dtype=np.int64)
    pos = np.arange(len(words)) + np.repeat(np.arange(len(sentences)), lengths)
    seq[pos] = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
    sent_of = np.repeat(np.arange(len(sentences)), lengths + 1)
    keys = np.zeros((total, n_max), dtype=np.int64)
    valid = np.ones(total, dtype=bool)
    bits = 63 // n_max
    packed = len(vocab) < (1 << bits)
    prefix = np.zeros(total, dtype=np.int64)
    for n in range(n_max):
        word = seq[n:n + total]
        valid &= word != 0
        if packed:
            prefix = prefix | (word << (bits * n))
            keys[:, n] = np.where(valid, prefix, 0)
        else:  # large vocabularies: dense ids of (prefix id, word) pairs, one n at a time
            _, prefix = np.unique(prefix * (len(vocab) + 1) + word, return_inverse=True)
            prefix = prefix.reshape(-1).astype(np.int64) + 1
            keys[:, n] = np.where(valid, prefix + (n << 58), 0)  # n in the top bits: ids of different n differ
    flat = keys.reshape(-1)
    keep = flat != 0
    return flat[keep], np.repeat(sent_of, n_max)[keep], np.tile(np.arange(1, n_max + 1), total)[keep]


class CiderD:
    """CIDEr-D over one evaluation set (pre-tokenized, whitespace-joined strings)."""

    def __init__(self, n: int = 4, sigma: float = 6.0):
        self.n, self.sigma = n, sigma

    def compute(self, hyps: list[str], refs: list[list[str]]) -> tuple[float, np.ndarray]:
        n_img = len(hyps)
        if n_img == 0:
            return 0.0, np.zeros(0)
        n_refs = np.fromiter(map(len, refs), dtype=np.int64, count=n_img)
        sentences = [h.split() for h in hyps] + [r.split() for r in chain.from_iterable(refs)]
        n_sent = len(sentences)
        image_of = np.concatenate([np.arange(n_img), np.repeat(np.arange(n_img), n_refs)])
        keys, sent, order = _ngram_keys(sentences, self.n)
        # bigram occurrences per sentence: pycocoevalcap's "length"
        lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=n_sent)
        length = np.maximum(lengths - 1, 0).astype(np.float64) if self.n >= 2 else np.zeros(n_sent)
        if len(keys) == 0:
            return 0.0, np.zeros(n_img)

        # one stable sort groups rows by n-gram, sentences ascending inside each group
        idx = np.argsort(keys, kind="stable")
        k, s = keys[idx], sent[idx]
        new_gram = np.empty(len(k), dtype=bool)
        new_gram[0] = True
        np.not_equal(k[1:], k[:-1], out=new_gram[1:])
        new_pair = new_gram.copy()
        new_pair[1:] |= s[1:] != s[:-1]
        gram_of_row = np.cumsum(new_gram) - 1
        starts = np.flatnonzero(new_pair)
        tf = np.diff(np.append(starts, len(k))).astype(np.float64)
        p_gram, p_sent, order = gram_of_row[starts], s[starts], order[idx[starts]]
        n_grams = int(gram_of_row[-1]) + 1

        # document frequency: distinct images among each n-gram's reference rows
        is_ref = p_sent >= n_img
        r_gram, r_img = p_gram[is_ref], image_of[p_sent[is_ref]]
        distinct = np.empty(len(r_gram), dtype=bool)
        distinct[:1] = True
        distinct[1:] = (r_gram[1:] != r_gram[:-1]) | (r_img[1:] != r_img[:-1])
        df = np.bincount(r_gram[distinct], minlength=n_grams).astype(np.float64)
        value = tf * (np.log(float(n_img)) - np.log(np.maximum(1.0, df[p_gram])))

        slot = p_sent * self.n + (order - 1)
        norm = np.sqrt(np.bincount(slot, weights=value * value, minlength=n_sent * self.n)).reshape(n_sent, self.n)

        # clipped dot products over the n-grams a reference shares with its image's hypothesis
        is_hyp = ~is_ref
        hyp_key = p_gram[is_hyp] * n_img + p_sent[is_hyp]  # ascending: gram-major, sentence-minor
        hyp_val = value[is_hyp]
        ref_rows = np.flatnonzero(is_ref)
        ref_key = r_gram * n_img + r_img
        where = np.searchsorted(hyp_key, ref_key)
        shared = where < len(hyp_key)
        shared[shared] = hyp_key[where[shared]] == ref_key[shared]
        ref_rows, where = ref_rows[shared], where[shared]
        r_val = value[ref_rows]
        dots = np.bincount(slot[ref_rows], weights=np.minimum(hyp_val[where], r_val) * r_val,
                           minlength=n_sent * self.n).astype(np.float64).reshape(n_sent, self.n)[n_img:]

        ref_img = image_of[n_img:]
        ok = (norm[ref_img] != 0) & (norm[n_img:] != 0)
        sims = np.divide(dots, norm[ref_img] * norm[n_img:], out=dots.copy(), where=ok)
        delta = length[ref_img] - length[n_img:]
        sims *= np.exp(-(delta * delta) / (2 * self.sigma**2))[:, None]
        scores = np.bincount(ref_img, weights=sims.mean(axis=1), minlength=n_img) / n_refs * 10.0
        return float(scores.mean()), scores


def cider_d_from_tokens(hyps: list[str], refs: list[list[str]], n: int = 4, sigma: float = 6.0):
    return CiderD(n=n, sigma=sigma).compute(hyps, refs)
