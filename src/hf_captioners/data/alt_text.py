"""Alt-texts as the data readers hand them over: MetaCLIP's metadata parsed, whitespace collapsed, duplicates
dropped in order. What the model then reads (HTML stripped, joined with "; ", cut to the prompt) is the
processor's (`altogether/processing_altogether.py`), the same at training, evaluation and re-captioning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["alt_texts_from_metadata", "names_shared", "prepare_alt_texts"]

NAME = re.compile(r"\b[A-Z][a-z]{2,}\b")


def prepare_alt_texts(texts: Iterable[str]) -> list[str]:
    """Strip and deduplicate alt-texts in order (the original joined these with '; ')."""
    seen, kept = set(), []
    for text in texts:
        text = " ".join(str(text).split())
        if text and text not in seen:
            seen.add(text)
            kept.append(text)
    return kept


def alt_texts_from_metadata(meta) -> list[str]:
    """MetaCLIP's `{"texts": [[source, text], ...]}` → alt-texts; a plain string is one alt-text.

    No `texts` or an empty list is a record without alt-text ([]); any other shape raises ValueError, so that a
    schema surprise becomes that record's error rather than a caption of garbage.
    """
    if not isinstance(meta, dict):
        raise ValueError(f"json is {_kind(meta)}, not an object with 'texts'")
    texts = meta.get("texts")
    if texts is None:
        return []
    if isinstance(texts, str):
        return prepare_alt_texts([texts])
    if not isinstance(texts, list):
        raise ValueError(f"'texts' is {_kind(texts)}, not a list of [source, text] pairs")
    found = []
    for i, entry in enumerate(texts):
        if isinstance(entry, list) and len(entry) >= 2:
            entry = entry[1]
        elif isinstance(entry, list):
            raise ValueError(f"texts[{i}] has {len(entry)} element(s), not a [source, text] pair")
        if not isinstance(entry, str):
            raise ValueError(f"texts[{i}] holds {_kind(entry)}, not a string")
        found.append(entry)
    return prepare_alt_texts(found)


def names_shared(prompt, target: str) -> bool:
    """Whether the caption names (a capitalised word, its first word aside) something the alt-text names."""
    words = target.split(maxsplit=1)
    text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
    return len(words) > 1 and bool(set(NAME.findall(words[1])) & set(NAME.findall(text)))


def _kind(value) -> str:
    return "null" if value is None else f"a {type(value).__name__}"
