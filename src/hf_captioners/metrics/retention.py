"""Alt-text retention (the Altogether claim: a re-aligned caption keeps what only the alt-text knows) and
caption length statistics.

Salient alt-text terms are proper names (capitalised words that do not start the text or a sentence, and
multi-word capitalised spans) and rare words (not in a list of common English words, at least 4 letters,
not a number). Retention of an example = share of its salient terms found in the caption (case-insensitive,
whole words). In the toy world the name the alt-text carries is known exactly, so `names=` replaces the
heuristic: retention is then whether that name appears in the caption.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from statistics import mean, median

__all__ = ["alt_text_retention", "caption_length_stats", "salient_terms"]

_WORD = re.compile(r"[^\W\d_][\w'\-]*", re.UNICODE)
_SENTENCE_START = re.compile(r"(^|[.!?:;]\s+|[\"'(\[]\s*)$")
# common function/visual words that carry no alt-text-only knowledge
_COMMON = frozenset("""
a an the and or but of in on at to for from with without by near over under above below behind front into
onto off out up down is are was were be been being has have had this that these those it its there their
they them he she his her him we our you your i my me some any all each every one two three four five many
few more most other another such no not very too also just than then while when where which who whom whose
what how why image photo picture shows showing shown view close closeup stock free high quality background
white black red blue green yellow orange purple pink brown gray grey large small big little new old top side
left right center middle man woman men women people person boy girl child children dog cat bird tree water
sky day night street road table room house building car city field grass wall floor light dark bright
""".split())


def salient_terms(alt_text: str, common: frozenset[str] = _COMMON) -> list[str]:
    """Proper names and rare words of an alt-text, lower-cased, in order, without duplicates."""
    terms: list[str] = []
    words = list(_WORD.finditer(alt_text))
    i = 0
    while i < len(words):
        m = words[i]
        word = m.group(0)
        at_start = _SENTENCE_START.search(alt_text[: m.start()]) is not None
        if word[0].isupper() and not at_start:
            j = i + 1
            while j < len(words) and words[j].group(0)[0].isupper() and alt_text[words[j - 1].end():words[j].start()] == " ":
                j += 1
            terms.append(" ".join(w.group(0) for w in words[i:j]).lower())
            i = j
            continue
        low = word.lower()
        if len(low) >= 4 and low not in common:
            terms.append(low)
        i += 1
    return list(dict.fromkeys(terms))


def _contains(caption_lower: str, term: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(term)}(?![\w])", caption_lower) is not None


def alt_text_retention(
    captions: Sequence[str],
    alt_texts: Sequence[str],
    names: Sequence[str | None] | None = None,
) -> dict:
    """{"retention": mean share of salient alt-text terms kept, "scores": per example (None where the
    alt-text has no salient term), "n_scored": examples with terms}. With `names`, each example's term is
    its known name (None / "" = nothing to retain)."""
    if len(captions) != len(alt_texts):
        raise ValueError(f"got {len(captions)} captions but {len(alt_texts)} alt-texts")
    if names is not None and len(names) != len(captions):
        raise ValueError(f"got {len(captions)} captions but {len(names)} names")
    scores: list[float | None] = []
    for i, (caption, alt) in enumerate(zip(captions, alt_texts)):
        if not isinstance(caption, str) or not isinstance(alt, str):
            raise TypeError(f"example {i}: caption and alt-text must be str, got {type(caption).__name__}, {type(alt).__name__}")
        if names is not None:
            terms = [names[i].lower()] if names[i] and names[i].lower() in alt.lower() else []
        else:
            terms = salient_terms(alt)
        if not terms:
            scores.append(None)
            continue
        low = caption.lower()
        scores.append(sum(_contains(low, t) for t in terms) / len(terms))
    scored = [s for s in scores if s is not None]
    return {"retention": mean(scored) if scored else None, "scores": scores, "n_scored": len(scored)}


def caption_length_stats(captions: Sequence[str]) -> dict:
    """Words per caption (whitespace split): mean, median, min, max, and share of empty captions."""
    lengths = [len(c.split()) for c in captions]
    if not lengths:
        return {"mean": 0.0, "median": 0.0, "min": 0, "max": 0, "empty": 0.0}
    return {"mean": mean(lengths), "median": float(median(lengths)), "min": min(lengths), "max": max(lengths),
            "empty": sum(n == 0 for n in lengths) / len(lengths)}
