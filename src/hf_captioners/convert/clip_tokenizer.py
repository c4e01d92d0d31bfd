"""open_clip's bundled BPE vocabulary as a transformers `CLIPTokenizer`, with no download.

open_clip ships `bpe_simple_vocab_16e6.txt.gz` (OpenAI CLIP's merges). Its `SimpleTokenizer` builds
the 49,408-entry vocabulary from that file in a fixed order: 256 byte symbols, the same with `</w>`,
48,894 merges, then start/end of text (ids 49406/49407). We rebuild that order, hand it to
`CLIPTokenizer`, and make it match open_clip exactly: padding with id 0 (`"!"`, what open_clip's zero
padding decodes to), truncation that keeps the end token, and the HTML un-escaping and quote
straightening that open_clip's text cleaning does.

What the tokenizers library cannot express is left out: ftfy's mojibake repair and rare HTML entities
(anything beyond those in `_HTML_ENTITIES`). Text that needs them tokenizes differently.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["CLIP_CONTEXT_LENGTH", "build_clip_tokenizer", "clip_byte_symbols", "open_clip_bpe_path"]

CLIP_CONTEXT_LENGTH = 77
_NUM_MERGES = 49152 - 256 - 2
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"
# open_clip's clean step un-escapes HTML twice and ftfy straightens typographic quotes.
_HTML_ENTITIES = (
    ("&amp;", "&"),
    ("&amp;", "&"),
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&#39;", "'"),
    ("&#x27;", "'"),
    ("&apos;", "'"),
    ("&nbsp;", " "),
)
# open_clip's word pattern (text is lower-cased first); its special-token alternatives are left out
# because they never match cleaned text that does not spell them out.
_WORDS = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_QUOTES = (("\u2018", "'"), ("\u2019", "'"), ("\u201c", '"'), ("\u201d", '"'))


def open_clip_bpe_path() -> Path:
    """Where the installed open_clip keeps its BPE file, found without importing open_clip (2.5 s)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("open_clip is not installed; it carries the CLIP BPE vocabulary (pip install open_clip_torch)")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise FileNotFoundError(f"open_clip is installed but has no BPE vocabulary at {path}")
    return path


def clip_byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes, in CLIP/GPT-2 order: printable bytes keep their own
    character, the rest map to code points from 256 upwards in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    keep = set(printable)
    shifted = [b for b in range(256) if b not in keep]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(shifted))]


def _vocab_and_merges(bpe_path: str | os.PathLike) -> tuple[dict[str, int], list[tuple[str, str]]]:
    with gzip.open(bpe_path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
    if len(merges) != _NUM_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"{bpe_path}: expected {_NUM_MERGES} BPE merges of two symbols each")
    symbols = clip_byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [_BOS, _EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_clip_tokenizer(
    bpe_path: str | os.PathLike | None = None,
    context_length: int = CLIP_CONTEXT_LENGTH,
    out_dir: str | os.PathLike | None = None,
    exact: bool = True,
):
    """A tokenizer equal to open_clip's when called with `padding="max_length", truncation=True,
    max_length=context_length`; saved to `out_dir` if given.

    `exact=True` returns a `PreTrainedTokenizerFast` whose whole pipeline lives in tokenizer.json, so
    `AutoTokenizer.from_pretrained` reloads it unchanged. `exact=False` returns a `CLIPTokenizer`; that
    class rebuilds transformers' stock CLIP normaliser on load, which does not un-escape HTML or
    straighten quotes, so after a reload it equals open_clip on plain text only.
    """
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers
    from transformers import CLIPTokenizer, PreTrainedTokenizerFast

    vocab, merges = _vocab_and_merges(bpe_path or open_clip_bpe_path())
    # split_special_tokens: open_clip never reads special tokens out of the text (and "!" is our pad).
    special = {"bos_token": _BOS, "eos_token": _EOS, "unk_token": _EOS, "pad_token": "!"}
    options = {"model_max_length": context_length, "split_special_tokens": True}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, **special, **options)
    backend = tokenizer.backend_tokenizer
    replacements = [normalizers.Replace(a, b) for a, b in (*_HTML_ENTITIES, *_QUOTES)]
    backend.normalizer = normalizers.Sequence(
        [normalizers.NFC(), *replacements, normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_WORDS), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    if exact:
        backend.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Replace("</w>", " "), decoders.Strip(" ", 0, 1)])
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **special, **options)
    if len(tokenizer) != 49408 or tokenizer.bos_token_id != 49406 or tokenizer.eos_token_id != 49407:
        raise RuntimeError(
            f"CLIP vocabulary rebuilt wrongly: size {len(tokenizer)}, bos/eos {tokenizer.bos_token_id}/{tokenizer.eos_token_id}"
        )
    if out_dir is not None:
        tokenizer.save_pretrained(out_dir)
        logger.info("CLIP tokenizer (vocab %d, context %d) saved to %s", len(tokenizer), context_length, out_dir)
    return tokenizer
