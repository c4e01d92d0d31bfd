"""CIDEr-D exactly as pycocoevalcap computes it, vectorised with numpy.

Definition (pycocoevalcap `cider_scorer.py`): n-grams n=1..4 of whitespace-split tokens; document frequency of
an n-gram = number of images whose reference set contains it (over the evaluated set only); weight =
tf * (log(#images) - log(max(1, df))); per n, the hypothesis/reference similarity is
sum_g min(h_g, r_g) * r_g / (|h| |r|), times exp(-delta^2 / (2 sigma^2)); averaged over n and over the
references, times 10. Its "length" is the number of bigram occurrences, max(#tokens - 1, 0), not the
number of tokens; that quirk is kept so scores match to float precision.

Instead of per-pair Python dicts, every n-gram of every sentence is packed into one integer key, and term
frequencies, document frequencies, norms and clipped dot products become sorts and bincounts. Per n, key and
sentence share one int64 where they fit, so a values-only sort (far faster than a stable argsort) does it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import chain, count

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


_SEP = "\x00"  # joins sentences so one str.split tokenizes them all; a token equal to it takes the slow path


def _interleave(hyp_ids: np.ndarray, ref_ids: np.ndarray, n_refs: Sequence[int]) -> np.ndarray:
    """Two streams of 0-separated sentences (the hypotheses; all references in image order) -> one stream, image
    by image the hypothesis then its references, as `compute_ids` reads it."""
    hyp_ids, ref_ids = np.asarray(hyp_ids, dtype=np.int64), np.asarray(ref_ids, dtype=np.int64)
    buffer = np.concatenate([hyp_ids, [0], ref_ids])
    separator = len(hyp_ids)

    def spans(ids: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        cuts = np.flatnonzero(ids == 0)
        starts = np.concatenate([[0], cuts + 1])
        return starts + offset, np.concatenate([cuts, [len(ids)]]) - starts

    hyp_start, hyp_len = spans(hyp_ids, 0)
    ref_start, ref_len = spans(ref_ids, separator + 1)
    per_image = np.asarray(n_refs, dtype=np.int64) + 1
    is_hyp = np.zeros(int(per_image.sum()), dtype=bool)
    is_hyp[np.cumsum(per_image) - per_image] = True
    start, length = np.empty(len(is_hyp), dtype=np.int64), np.empty(len(is_hyp), dtype=np.int64)
    start[is_hyp], length[is_hyp] = hyp_start, hyp_len
    start[~is_hyp], length[~is_hyp] = ref_start, ref_len
    out_len = length + 1  # each sentence and the 0 after it
    sentence = np.repeat(np.arange(len(length)), out_len)
    local = np.arange(len(sentence)) - np.repeat(np.cumsum(out_len) - out_len, out_len)
    index = np.where(local < length[sentence], start[sentence] + local, separator)
    return buffer[index[:-1]]


def _word_ids(sentences: list[str]) -> np.ndarray:
    """Word ids (1, 2, ...) of all sentences end to end, one 0 between consecutive sentences."""
    words = f" {_SEP} ".join(sentences).split()
    vocab = defaultdict(count().__next__)
    vocab[_SEP]
    ids = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
    if np.count_nonzero(ids == 0) == len(sentences) - 1:
        return ids
    words = list(chain.from_iterable(s.split() + [None] for s in sentences))[:-1]
    vocab = defaultdict(count().__next__)
    vocab[None]
    return np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))


def _sorted_pairs(keys: np.ndarray, bound: int, sent: np.ndarray, sent_bits: int) -> np.ndarray:
    """Sorted codes gram << sent_bits | sentence of n-gram occurrences (keys < bound), gram ids in key order.

    Small key spaces need one value sort; otherwise an unstable argsort makes gram ids dense first.
    """
    if bound.bit_length() + sent_bits <= 63:
        return np.sort((keys << sent_bits) | sent)
    idx = np.argsort(keys)
    ordered = keys[idx]
    gram = np.zeros(len(ordered), dtype=np.int64)
    np.cumsum(ordered[1:] != ordered[:-1], out=gram[1:])
    return np.sort((gram << sent_bits) | sent[idx])


def _dense(keys: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, int]:
    """Keys renumbered 1, 2, ... in sorted order where valid (0 elsewhere): keeps longer n-gram keys in int64."""
    where = np.flatnonzero(valid)
    idx = np.argsort(keys[where])
    ordered = keys[where][idx]
    rank = np.ones(len(ordered), dtype=np.int64)
    np.cumsum(ordered[1:] != ordered[:-1], out=rank[1:])
    rank[1:] += 1
    out = np.zeros_like(keys)
    out[where[idx]] = rank
    return out, int(rank[-1]) + 1 if len(rank) else 1


class CiderD:
    """CIDEr-D over one evaluation set (pre-tokenized, whitespace-joined strings)."""

    def __init__(self, n: int = 4, sigma: float = 6.0):
        self.n, self.sigma = n, sigma

    def compute(self, hyps: list[str], refs: list[list[str]]) -> tuple[float, np.ndarray]:
        """Scores of each image's hypothesis against its references, and their mean.

        Sentences are numbered image << ref_bits | slot (slot 0 the hypothesis, 1.. the references), so one
        sort by (n-gram, sentence) puts every hypothesis n-gram right before the same image's reference
        occurrences of it: document frequencies and clipped dot products are then run-length operations.
        """
        if len(hyps) == 0:
            return 0.0, np.zeros(0)
        ids = _word_ids(list(chain.from_iterable(chain((h,), r) for h, r in zip(hyps, refs))))
        return self.compute_ids(ids, list(map(len, refs)))

    def compute_captions(self, predictions: list[str], references: list[list[str]], word_ids=None) -> tuple[float, np.ndarray]:
        """`compute` from captions. With `word_ids` (a tokenizer's captions -> ids, e.g. `PTBTokenizer.word_ids`)
        they are tokenized straight to word ids, with no token strings joined and split again; without it they
        are taken as already tokenized (whitespace-separated)."""
        if word_ids is None:
            return self.compute(predictions, references)
        # pycocoevalcap tokenizes the references and the predictions as two streams (a caption's end can depend
        # on the next caption), so they are tokenized apart and then interleaved image by image
        if not predictions:
            return self.compute_ids(np.zeros(0, dtype=np.int64), [])
        n_refs = list(map(len, references))
        ids = _interleave(word_ids(predictions), word_ids(chain.from_iterable(references)), n_refs)
        return self.compute_ids(ids, n_refs)

    def compute_ids(self, ids: np.ndarray, n_refs: Sequence[int]) -> tuple[float, np.ndarray]:
        """`compute` on word ids: `ids` holds every sentence's token ids (positive int64) end to end, image by
        image the hypothesis then its `n_refs[i]` references, with one 0 between consecutive sentences."""
        n_img = len(n_refs)
        if n_img == 0:
            return 0.0, np.zeros(0)
        n_refs = np.asarray(n_refs, dtype=np.int64)
        ref_bits = int(n_refs.max()).bit_length()
        n_slots = 1 << ref_bits
        sent_bits = max(((n_img << ref_bits) - 1).bit_length(), 1)
        ids = np.asarray(ids, dtype=np.int64)
        if np.count_nonzero(ids == 0) != int(n_refs.sum()) + n_img - 1:
            raise ValueError("ids must hold one 0 between consecutive sentences, and one sentence per hypothesis "
                             "and reference")

        per_image = n_refs + 1
        first = np.cumsum(per_image) - per_image
        n_seq = int(per_image.sum())
        code = (np.repeat(np.arange(n_img), per_image) << ref_bits) + np.arange(n_seq) - np.repeat(first, per_image)
        is_sep = ids == 0
        sent_of = code[np.cumsum(is_sep) - is_sep]
        lengths = np.bincount(sent_of, weights=~is_sep, minlength=n_img * n_slots)
        length = np.maximum(lengths - 1, 0) if self.n >= 2 else np.zeros(n_img * n_slots)

        seq = np.concatenate([ids, np.zeros(self.n, dtype=np.int64)])
        base = int(ids.max(initial=0)) + 1
        keys, bound = ids.copy(), base
        valid = ~is_sep
        norm2 = np.zeros((self.n, n_img * n_slots))
        dots = np.zeros((self.n, n_img * n_slots))
        log_n = np.log(float(n_img))
        for j in range(self.n):
            if j:
                if (bound * base).bit_length() > 63:
                    keys, bound = _dense(keys, valid)
                word = seq[j:j + len(ids)]
                valid &= word != 0
                keys = keys * base + word
                bound *= base
            if not valid.any():
                break
            pairs = _sorted_pairs(keys[valid], bound, sent_of[valid], sent_bits)
            starts = np.flatnonzero(np.concatenate([[True], pairs[1:] != pairs[:-1]]))
            tf = np.diff(np.append(starts, len(pairs))).astype(np.float64)
            pairs = pairs[starts]
            sent, slot = pairs & ((1 << sent_bits) - 1), pairs & (n_slots - 1)
            group = pairs >> ref_bits  # (gram, image)
            head = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]]))
            gram = group[head] >> (sent_bits - ref_bits)
            gram_head = np.flatnonzero(np.concatenate([[True], gram[1:] != gram[:-1]]))
            has_ref = slot[np.append(head[1:], len(pairs)) - 1] != 0  # a group's last row is a reference iff it has one
            df = np.add.reduceat(has_ref.astype(np.int64), gram_head)
            idf = log_n - np.log(np.maximum(1.0, df))
            value = tf * np.repeat(idf, np.diff(np.append(head[gram_head], len(pairs))))
            norm2[j] = np.bincount(sent, weights=value * value, minlength=n_img * n_slots)
            # a hypothesis row meets itself (its slot's dot is never read); groups without one add 0
            hyp_value = np.repeat(np.where(slot[head] == 0, value[head], 0.0), np.diff(np.append(head, len(pairs))))
            dots[j] = np.bincount(sent, weights=np.minimum(hyp_value, value) * value, minlength=n_img * n_slots)

        shape = (n_img, n_slots, self.n)
        norm = np.sqrt(norm2.T).reshape(shape)
        dots = dots.T.reshape(shape)[:, 1:]
        hyp_norm, ref_norm = norm[:, :1], norm[:, 1:]
        ok = (hyp_norm != 0) & (ref_norm != 0)
        sims = np.divide(dots, hyp_norm * ref_norm, out=np.zeros_like(dots), where=ok)
        length = length.reshape(n_img, n_slots)
        delta = length[:, :1] - length[:, 1:]
        sims *= np.exp(-(delta * delta) / (2 * self.sigma**2))[:, :, None]
        scores = sims.sum(axis=1).mean(axis=1) / n_refs * 10.0
        return float(scores.mean()), scores


def cider_d_from_tokens(hyps: list[str], refs: list[list[str]], n: int = 4, sigma: float = 6.0):
    return CiderD(n=n, sigma=sigma).compute(hyps, refs)
