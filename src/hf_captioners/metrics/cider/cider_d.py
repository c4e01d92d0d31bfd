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


def _ngram_table(sentences: list[list[str]], n_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All n-grams of all sentences as (sentence index, n-gram id, n, count), one row per distinct pair."""
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    words = list(chain.from_iterable(sentences))
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words), 1)}
    # sentences laid end to end with a 0 separator after each; a window containing 0 crosses a boundary
    seq = np.zeros(len(words) + len(sentences) + n_max, dtype=np.int64)
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    pos = np.repeat(starts, lengths) + (np.arange(len(words)) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    seq[pos] = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
    sent_of = np.repeat(np.arange(len(sentences)), lengths + 1)
    total = len(sent_of)
    columns = np.stack([seq[k:k + total] for k in range(n_max)], axis=1)  # (total, n_max) word ids
    keys_list, sents_list, ns_list = [], [], []
    for n in range(1, n_max + 1):
        window = columns[:, :n]
        ok = np.all(window != 0, axis=1)
        rows = window[ok]
        if len(vocab) < (1 << (63 // n_max)):
            bits = 63 // n_max
            key = np.zeros(len(rows), dtype=np.int64)
            for k in range(n):
                key |= rows[:, k] << (bits * k)
            keys_list.append(key)
        else:  # huge vocabularies: tuples instead of packed integers (slower, same result)
            padded = np.zeros((len(rows), n_max), dtype=np.int64)
            padded[:, :n] = rows
            keys_list.append(padded)
        sents_list.append(sent_of[:total][ok])
        ns_list.append(np.full(int(ok.sum()), n, dtype=np.int8))
    sents = np.concatenate(sents_list)
    ns = np.concatenate(ns_list)
    if keys_list and keys_list[0].ndim == 1:
        _, gram = np.unique(np.concatenate(keys_list), return_inverse=True)
    else:
        _, gram = np.unique(np.concatenate(keys_list, axis=0), axis=0, return_inverse=True)
    gram = gram.reshape(-1).astype(np.int64)
    n_grams = int(gram.max()) + 1 if len(gram) else 0
    pair, first, counts = np.unique(sents * max(n_grams, 1) + gram, return_index=True, return_counts=True)
    return pair // max(n_grams, 1), pair % max(n_grams, 1), ns[first], counts.astype(np.float64)


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
        sent, gram, order, tf = _ngram_table(sentences, self.n)

        # document frequency: images whose references contain the n-gram
        is_ref = sent >= n_img
        n_grams = int(gram.max()) + 1 if len(gram) else 1
        img_gram = np.unique(image_of[sent[is_ref]] * n_grams + gram[is_ref])
        df = np.bincount(img_gram % n_grams, minlength=n_grams).astype(np.float64)
        ref_len = np.log(float(n_img))
        value = tf * (ref_len - np.log(np.maximum(1.0, df[gram])))

        slot = sent * self.n + (order - 1)
        norm = np.sqrt(np.bincount(slot, weights=value * value, minlength=n_sent * self.n)).reshape(n_sent, self.n)
        length = np.bincount(sent, weights=np.where(order == 2, tf, 0.0), minlength=n_sent)

        # clipped dot products between each reference and its image's hypothesis, over shared n-grams
        hyp_rows = ~is_ref
        hyp_key = image_of[sent[hyp_rows]] * n_grams + gram[hyp_rows]  # sorted: rows are sorted by (sent, gram)
        hyp_val = value[hyp_rows]
        ref_idx = np.flatnonzero(is_ref)
        ref_key = image_of[sent[ref_idx]] * n_grams + gram[ref_idx]
        where = np.searchsorted(hyp_key, ref_key)
        where_clip = np.minimum(where, max(len(hyp_key) - 1, 0))
        shared = (where < len(hyp_key)) & (hyp_key[where_clip] == ref_key) if len(hyp_key) else np.zeros(0, bool)
        ref_idx, where = ref_idx[shared], where[shared]
        r_val = value[ref_idx]
        dots = np.bincount(slot[ref_idx], weights=np.minimum(hyp_val[where], r_val) * r_val,
                           minlength=n_sent * self.n).reshape(n_sent, self.n)[n_img:]

        ref_img = image_of[n_img:]
        denom = norm[ref_img] * norm[n_img:]
        sims = np.divide(dots, denom, out=dots.copy(), where=(norm[ref_img] != 0) & (norm[n_img:] != 0))
        delta = length[ref_img] - length[n_img:]
        sims *= np.exp(-(delta * delta) / (2 * self.sigma**2))[:, None]
        per_ref = sims.mean(axis=1)
        scores = np.bincount(ref_img, weights=per_ref, minlength=n_img) / n_refs * 10.0
        return float(scores.mean()), scores


def cider_d_from_tokens(hyps: list[str], refs: list[list[str]], n: int = 4, sigma: float = 6.0):
    return CiderD(n=n, sigma=sigma).compute(hyps, refs)
