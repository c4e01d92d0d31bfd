"""A pure-Python equivalent of the tokenization step of pycocoevalcap's CIDEr / BLEU / ROUGE.

pycocoevalcap runs Stanford CoreNLP 3.4.1's `PTBTokenizer -preserveLines -lowerCase` in Java on every
caption and then drops a fixed list of punctuation tokens. Scores are only comparable across papers if
the tokens are the same, so this module reproduces that behaviour (including its oddities: "(" becomes
"-lrb-" and survives the punctuation filter, "cannot" becomes "can not", digit groups like "100 200 300"
become one phone-number token joined by U+00A0, emoji and other non-BMP characters are deleted).

The reproduction is a longest-match scanner over the lexer's token classes, checked token for token against
the Java tokenizer by `tests/test_metrics_ptb_tokenizer.py`. Speed comes from scanning each whitespace-
separated chunk once and caching it: only a few token classes (phone numbers, "5 7/8", ". . .", SGML tags)
can span a space, and captions containing them are scanned as a whole.

Known, deliberate differences from pycocoevalcap's wrapper: line-break characters other than "\\n"
("\\r", U+2028, U+0085, ...) are treated as spaces (Java treats them as line ends, which silently shifts
every later caption onto the wrong image in pycocoevalcap), and letters are classified with Python's
Unicode tables (Java 17's; CoreNLP 3.4.1 was built against older ones, which matters only for scripts added
to Unicode recently).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterable
from itertools import chain

import numpy as np

__all__ = ["PUNCTUATIONS", "PTBTokenizer", "ptb_tokenize", "ptb_word_ids", "tokenize_caption"]

# the tokens pycocoevalcap removes after tokenization (note: the parenthesis tokens are upper case here but
# lower case after -lowerCase, so "-lrb-" / "-rrb-" are never removed; kept as is for parity)
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                          "--", "...", ";"])


def _char_class(predicate) -> str:
    """A regex character-class body with every BMP code point satisfying `predicate`, as ranges."""
    parts, start, prev = [], None, None
    for cp in range(0x10000):
        if predicate(cp):
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            parts.append(re.escape(chr(start)) if start == prev else f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
            start = None
    if start is not None:
        parts.append(f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
    return "".join(parts)


_LETTERS = _char_class(lambda cp: unicodedata.category(chr(cp)).startswith("L"))
_DIGITS = _char_class(lambda cp: unicodedata.category(chr(cp)) == "Nd") + "\u07c0-\u07c9"
# marks and modifiers CoreNLP accepts inside words although Java does not call them letters
_WORD_EXTRA = "\u00ad\u0237-\u024f\u02c2-\u02c5\u02d2-\u02df\u02e5-\u02ff\u0300-\u036f\u0483-\u0487\u0591-\u05bd\u064b-\u065e\u0900-\u0903\u093c\u093e-\u094e\u0e30-\u0e3a\u0e47-\u0e4e"

LET = f"[{_LETTERS}]"
LETTER = f"(?:[{_LETTERS}{_WORD_EXTRA}]|&[aeiouAEIOU](?:acute|grave|uml);)"
DIGIT = f"[{_DIGITS}]"
ALNUM = f"[{_LETTERS}{_DIGITS}]"
SPACE = "[ \t\u00a0\u2000-\u200a\u3000]"
SPACENL = "[ \t\u00a0\u2000-\u200a\u3000\n]"
SGML = r"<\/?[A-Za-z!][^>]*>"
APOS = "(?:['\u0092\u2019]|&apos;)"
APOSETC = f"(?:{APOS}|[\u0091\u2018\u201b])"
REDAUX = f"{APOS}(?:[msdMSD]|(?i:re|ve|ll))"
SREDAUX = f"(?i:n){APOSETC}(?i:t)"
WORD = f"{LETTER}(?:{LETTER}|{DIGIT})*(?:[.!?]{LETTER}(?:{LETTER}|{DIGIT})*)*"
SWORD = "[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*"
NUM = f"(?:{DIGIT}*(?:[.:,\u00ad\u066b\u066c]{DIGIT}+)+|{DIGIT}+)"
NUMBER = f"[-+]?{NUM}"
HYPHEN = "[-_\u058a\u2010\u2011]"
ACRO2 = r"(?:[A-Za-z](?:\.[A-Za-z])+|(?i:Canada|Sino|Korean|EU|Japan|non)-(?i:U\.S)|(?i:U\.S\.-(?:U\.K|U\.S\.S\.R)))"
ACRO = r"(?:[A-Za-z](?:\.[A-Za-z])*|(?i:Canada|Sino|Korean|EU|Japan|non)-(?i:U\.S)|(?i:U\.S\.-(?:U\.K|U\.S\.S\.R)))"
THING = (f"(?:[dDoOlL]{APOSETC}{ALNUM})?{ALNUM}+"
         f"(?:{HYPHEN}(?:[dDoOlL]{APOSETC}{ALNUM})?{ALNUM}+)*")
HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:[A-Za-z0-9\u00ad]+|{ACRO2}\.))+"
THINGA = r"[A-Z]+(?:(?:[+&]|(?i:&amp;))[A-Z]+)+"
THING3 = r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?\/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"
APOWORD = (f"{APOS}(?i:n){APOS}?|[lLdDjJ]{APOS}|(?i:dunkin){APOS}|(?i:somethin){APOS}|(?i:ol){APOS}|{APOS}(?i:em)"
           f"|[A-HJ-XZn]{APOSETC}{LET}{{2}}{LET}*|{APOS}[2-9]0(?i:s)|{APOS}(?i:till?)"
           f"|{LET}{LET}*[aeiouyAEIOUY]{APOSETC}[aeiouA-Z]{LET}*|{APOS}(?i:cause)"
           r"|(?i:cont'd\.?|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)")
FULLURL = r"(?i:https?):\/\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-]"
LIKELYURL = (r"(?:(?:(?i:www)\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})"
             r"|(?:(?:[^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+(?i:com|net|org|edu)))"  # ",-_" is a range, as in CoreNLP
             r"(?:\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?")
EMAIL = (r"[a-zA-Z0-9][^ \t\n\f\r\"<>|(){}\u00a0]*@(?:[^ \t\n\f\r\"<>|(){}.\u00a0]+\.)*"
         r"[^ \t\n\f\r\"<>|(){}\[\].,;:\u00a0]+")
TWITTER = f"[@\uff20][a-zA-Z_][a-zA-Z_0-9]*|[#\uff03]{LETTER}+"
# abbreviation lists observed in CoreNLP 3.4.1 (only whether the final "." stays attached matters here)
ABMONTH = "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
ABDAYS = "Mon|Tue|Tues|Wed|Thu|Thurs|Fri"
ABSTATE_CI = "Ala|Ariz|Calif|Colo|Conn|Ct|Dak|Fla|Ga|Ind|Kans?|Ky|Md|Mich|Minn|Mo|Mont|Neb|Nev|Okla|Penn|Tenn|Va|Vt|Wisc?|Wyo"
ABSTATE_CS = "A(?i:z)|A(?i:rk)|D(?i:el)|I(?i:ll)|L(?i:a)|M(?i:ass)|M(?i:iss)|O(?i:re)|P(?i:a)|T(?i:ex)|W(?i:ash)"
ABCOMP = "Inc|Cos?|Corp|Pp?tys?|Ltd|Plc|Bancorp|Bhd|Assn|Univ|Intl|Sys|Bldg"
ABNUM = "tel|est|ext|sq|ft"
ABPTIT = r"Jr|Sr|Bros|(?:Ed|Ph)\.D|Blvd|Rd|Esq|etc|al|seq"
ABBREV1 = f"(?:(?i:{ABMONTH}|{ABDAYS}|{ABSTATE_CI}|{ABCOMP}|{ABNUM}|{ABPTIT})|{ABSTATE_CS})\\."
ABTITLE = ("Mr|Mrs|Ms|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|Cpl|Pvt|Mt|Capt"
           "|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det")
ABBREV4 = (f"(?:{ACRO}|(?i:{ABTITLE}|vs|Alex|Wm|Jos|Cie|a\\.k\\.a|cf|TREAS|Ph|Invt|Elec|Natl|M[ft]g|Dept)"
           "|M(?i:iss)|[A-Za-z])")
ABBREV3 = r"(?i:ca|figs?|prop|nos?|arts?|pp|op)\."
PHONE = (r"(?:\([0-9]{2,3}\)[ \u00a0]?|(?:\+\+?)?(?:[0-9]{2,4}[\- \u00a0])?[0-9]{2,4}[\- \u00a0])[0-9]{3,4}[\- \u00a0]?[0-9]{3,5}"
         r"|(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}")
SMILEY = r"[<>]?[:;=][\-o\*']?[\(\)DPdpO\\{@\|\[\]]"
ASIANSMILEY = r"[\^x=~<>]\.[\^x=~<>]|[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)"
QUOTES = f"''|{APOS}|[`\u2018\u2019\u201a\u201b\u201c\u201d\u0091\u0092\u0093\u0094\u201e\u201f\u2039\u203a\u00ab\u00bb]{{1,2}}"
MISCSYMBOL = ("[\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00b3\u00b4-\u00ba\u00d7\u00f7\u0387\u05be\u05c0\u05c3"
              "\u05c6\u05f3\u05f4\u0600-\u0603\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d"
              "\u07f6-\u07f8\u0964\u0965\u0e4f\u2020-\u2023\u2030-\u2038\u2044\u207a-\u207f\u208a-\u208e"
              "\u2100-\u214f\u2190-\u21ff\u2200-\u22ff\u2300-\u23ff\u2600-\u26ff\u3012\u30fb\uff01-\uff0f"
              "\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]")
ACRONYM_FOLLOWERS = ("About|According|Additionally|After|An|A|As|At|But|Earlier|He|Her|Here|However|If|In|It|Last"
                     r"|Many|More|Mr\.|Ms\.|Now|Once|One|Other|Our|She|Since|So|Some|Such|That|The|Then|There"
                     "|These|They|This|We|When|While|What|Yet|You")
SENTEND = f"{SPACENL}(?:{SPACENL}|[A-Z]|{SGML})"
_LATEX_LEFT = {"'": "`", "&apos;": "`", '"': "``", "&quot;": "``"}
_LATEX_RIGHT = {"'": "'", "&apos;": "'", '"': "''", "&quot;": "''"}
_LATEX_UNICODE = str.maketrans({"\u0091": "`", "\u2018": "`", "\u201b": "`", "\u2039": "`", "\u0092": "'", "\u2019": "'",
                                "\u203a": "'", "\u0093": "``", "\u201c": "``", "\u00ab": "``", "\u0094": "''",
                                "\u201d": "''", "\u00bb": "''"})


def _quotes(text: str, left: bool) -> str:
    table = _LATEX_LEFT if left else _LATEX_RIGHT
    text = re.sub(r"&apos;|'|\"|&quot;", lambda m: table[m.group(0)], text)
    return text.translate(_LATEX_UNICODE)


def _currency(text: str) -> str:
    return re.sub("[\u0080\u00a4\u20a0\u20ac]", "$", text.replace("\u00a2", "cents").replace("\u00a3", "#"))


def _parens(text: str) -> str:
    return text.replace("(", "-LRB-").replace(")", "-RRB-")


_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"}
_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
_SKIP, _DELETE = object(), object()


def _keep(text):
    return text


# (token regex, trailing-context regex or None, action). An action maps the token text to the output token,
# or is (n, None) meaning "emit the first n characters and scan the rest again" (JFlex's yypushback).
# Order matters only on ties: like JFlex, the longest match (token plus trailing context) wins, then the
# earliest rule.
_RULES = [
    ("(?i:cannot)", None, (3, "")),
    ("(?i:gonna|gotta|lemme|gimme|wanna)", None, (-2, "")),
    (f"{APOS}(?i:tis)", None, (-2, "")),
    (f"{APOS}(?i:twas)", None, (-3, "")),
    (r"(?i:c\+\+|c#|f#)", None, _keep),
    (SGML, None, lambda t: t.replace(" ", "\u00a0")),
    ("&(?:MD|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015]", None, lambda t: "--"),
    ("(?i:&amp;)", None, lambda t: "&"),
    ("&(?:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);", None, _keep),
    (WORD, REDAUX, lambda t: t.replace("\u00ad", "")),
    (SWORD, SREDAUX, lambda t: t.replace("\u00ad", "")),
    (WORD, None, lambda t: t.replace("\u00ad", "")),
    (APOWORD, None, _keep),
    ("(?i:y)" + APOS, LET, _keep),
    (FULLURL, None, _keep),
    (LIKELYURL, None, _keep),
    (EMAIL, None, _keep),
    (TWITTER, None, _keep),
    (REDAUX, "[^A-Za-z]", lambda t: _quotes(t, False)),
    (SREDAUX, None, lambda t: _quotes(t, False)),
    (f"{DIGIT}{{1,2}}[\\-\\/]{DIGIT}{{1,2}}[\\-\\/]{DIGIT}{{2,4}}", None, _keep),
    (NUMBER, None, lambda t: t.replace("\u00ad", "")),
    ("[\u207a\u207b\u208a\u208b]?(?:[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+|[\u2080-\u2089]+)", None, _keep),
    (f"(?:{DIGIT}{{1,4}}[- \u00a0])?{DIGIT}{{1,4}}(?:\\\\?\\/|\u2044){DIGIT}{{1,4}}", None,
     lambda t: t.replace(" ", "\u00a0")),
    ("[\u00bc\u00bd\u00be\u2153-\u215e]", None, lambda t: _FRACTIONS.get(t, t)),
    (r"-(?i:RRB|LRB|RCB|LCB|RSB|LSB)-|(?i:C\.D\.s|pro-|anti-|S(?:&|&amp;)P-500|S(?:&|&amp;)Ls)"
     f"|(?i:Cap){APOS}(?i:n)|(?i:c){APOS}(?i:est)", None, lambda t: re.sub("(?i)&amp;", "&", t)),
    (THING3, None, _keep),
    (r"[A-Z]*\$|#", None, _keep),
    ("[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]", None, _currency),
    (f"{ACRO}\\.", f"{SPACE}+(?:{ACRONYM_FOLLOWERS}){SPACENL}", (-1, "acronym")),
    (ABBREV1, SENTEND, (-1, "dup")),
    (ABBREV1, "(?s:..)", _keep),  # beats a longer WORD such as "Inc.a"
    (ABBREV3, f"{SPACE}?{DIGIT}", _keep),
    (f"{ABBREV4}\\.", None, _keep),
    (ABBREV4, SPACE, _keep),
    (ACRO, SPACENL, _keep),
    (f"{APOS}[0-9][0-9]", SPACENL, _keep),
    (f"{WORD}\\.", "[,;:]", lambda t: t.replace("\u00ad", "")),
    (PHONE, None, lambda t: _parens(t.replace(" ", "\u00a0"))),
    ('"|&quot;', "[A-Za-z0-9$]", lambda t: _quotes(t, True)),
    ('"|&quot;', None, lambda t: _quotes(t, False)),
    (SMILEY, "[^A-Za-z0-9]", _parens),
    (ASIANSMILEY, None, _parens),
    (r"\+|[%&\u2030\u2031]|~|\^|\||\\", None, _keep),
    (r"&lt;", None, lambda t: "<"),
    (r"&gt;", None, lambda t: ">"),
    (r"<<|>>|[<>]", None, _keep),
    (r"[\[\]{}()]", None, lambda t: _BRACKETS[t]),
    (r"-+", None, lambda t: "--" if 3 <= len(t) <= 4 else t),
    ("\\.{3,5}|(?:\\.[ \u00a0]){2,4}\\.|[\u0085\u2026]", None, lambda t: "..."),
    ("@+|#+|_+", None, _keep),
    (r"\*+|(?:\\\*){1,3}", None, _keep),
    ("[,;:]", None, _keep),
    ("[?!]+", None, _keep),
    ("[.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa]", None, _keep),
    ("=", None, _keep),
    (r"\/", None, _keep),
    (f"{HTHING}\\.", "[,;:]", lambda t: t.replace("\u00ad", "")),
    (HTHING, None, lambda t: t.replace("\u00ad", "")),
    (f"{THING}\\.", "[,;:]", _keep),
    (THING, None, _keep),
    (f"{THINGA}\\.", "[,;:]", lambda t: re.sub("(?i)&amp;", "&", t)),
    (THINGA, None, lambda t: re.sub("(?i)&amp;", "&", t)),
    ("'", "[A-Za-z][^ \t\n\r\u00a0]", lambda t: _quotes(t, True)),
    (REDAUX, None, lambda t: _quotes(t, False)),
    (QUOTES, None, lambda t: _quotes(t, False)),
    (MISCSYMBOL, None, _keep),
    ("(?i:&nbsp;)|[\0\u200b\u200e\u200f\ufeff \t\u00a0\u2000-\u200a\u3000\n]+", None, _SKIP),
]
_COMPILED = [(re.compile(f"({tok})({ctx})" if ctx else f"({tok})()"), action) for tok, ctx, action in _RULES]

# A caption needs whole-text scanning only where a token or its trailing context can cross a space (phone
# numbers, "5 7/8", ". . .", "No. 5", SGML tags, "I. The"), or where str.split() and CoreNLP disagree on
# what whitespace is. The pattern starts with one character class so `re` can skip ahead quickly.
_RARE_SPACE = "\r\x0b\x0c\x1c-\x1f\x85\u1680\u2028\u2029\u202f\u205f"
_NEEDS_FULL_SCAN = re.compile(
    f"[{_DIGITS}).<{_RARE_SPACE}](?:(?<={DIGIT})[ \u00a0]+{DIGIT}|(?<=[).])[ \u00a0]{DIGIT}|(?<=\\.)[ \u00a0]\\."
    f"|(?<=(?<![A-Za-z0-9])[A-Za-z]\\.){SPACE}+(?:{ACRONYM_FOLLOWERS}){SPACENL}|(?<=[<{_RARE_SPACE}]))"
)
_OTHER_NEWLINES = re.compile("\r\n|[\r\u2028\u2029\x0b\x0c\x85]")


def _scan(text: str) -> list[str]:
    """Longest-match scan of `text` (which must end with the character following the caption)."""
    tokens, i, n = [], 0, len(text) - 1
    while i < n:
        best_len, best = 0, None
        for rx, action in _COMPILED:
            m = rx.match(text, i)
            if m is not None and m.end() > best_len and m.end(1) > i:
                best_len, best = m.end(), (m, action)
        if best is None:
            i += 1  # untokenizable: CoreNLP deletes it (with a warning)
            continue
        m, action = best
        tok = m.group(1)
        if action is _SKIP:
            i = m.end(1)
        elif isinstance(action, tuple):
            k, mode = action
            keep = k if k > 0 else len(tok) + k
            tokens.append(tok if mode else tok[:keep])
            i += len(tok) if mode else keep
            if mode == "acronym" and len(tok) == 2:  # "I. The" -> "I" "."
                tokens[-1] = tok[0]
            if mode != "":  # the period is returned again as its own token
                tokens.append(".")
        else:
            tokens.append(action(tok))
            i = m.end(1)
    return tokens


class PTBTokenizer:
    """Tokenizes captions exactly as pycocoevalcap does, without Java.

    Each whitespace-separated chunk is scanned once and its final (lower-cased, punctuation-filtered) tokens
    are cached, so a caption costs a `str.split` and a few dictionary lookups.
    """

    def __init__(self, cache_size: int = 1_000_000):
        self._mid: dict[str, str] = {}  # chunk followed by a space
        self._last: dict[str, str] = {}  # chunk that ends the caption
        self._cache_size = cache_size
        self._vocab: dict[str, int] = {}  # token -> id (1, 2, ...), for word_ids
        self._mid_ids: dict[str, tuple[int, ...]] = {}
        self._last_ids: dict[str, tuple[int, ...]] = {}
        self._word_cache: dict[str, tuple[int, ...]] = {}  # chunk -> ids; chunk + "\0" (caption end) -> ids + (0,)

    @staticmethod
    def _finish(raw: list[str]) -> str:
        words = " ".join(raw).lower().split(" ")
        return " ".join(w for w in words if w and w not in PUNCTUATIONS)

    def _chunk(self, chunk: str, last: bool) -> str:
        cache = self._last if last else self._mid
        out = cache.get(chunk)
        if out is None:
            out = self._finish(_scan(chunk + ("\n\n" if last else " \n")))
            if len(cache) < self._cache_size:
                cache[chunk] = out
        return out

    def raw_tokens(self, caption: str) -> list[str]:
        """Tokens before lower-casing and punctuation removal (the whole caption scanned at once)."""
        if not isinstance(caption, str):
            raise TypeError(f"caption must be a str, got {type(caption).__name__}: {caption!r}")
        return _scan(_OTHER_NEWLINES.sub(" ", caption) + "\n\n")

    def tokenize_caption(self, caption: str) -> str:
        """One caption -> the space-joined token string pycocoevalcap would produce."""
        if not isinstance(caption, str):
            raise TypeError(f"caption must be a str, got {type(caption).__name__}: {caption!r}")
        if _NEEDS_FULL_SCAN.search(caption):
            return self._finish(self.raw_tokens(caption))
        chunks = caption.split()
        if not chunks:
            return ""
        mid, last = self._mid, chunks.pop()
        try:
            parts = list(map(mid.__getitem__, chunks))
        except KeyError:
            parts = [mid[c] if c in mid else self._chunk(c, False) for c in chunks]
        tail = self._last.get(last)
        parts.append(self._chunk(last, True) if tail is None else tail)
        return " ".join(filter(None, parts))

    def _ids(self, tokens: str) -> tuple[int, ...]:
        vocab = self._vocab
        return tuple(vocab.setdefault(w, len(vocab) + 1) for w in tokens.split())

    def _chunk_ids(self, chunk: str, last: bool) -> tuple[int, ...]:
        cache = self._last_ids if last else self._mid_ids
        out = cache.get(chunk)
        if out is None:
            out = self._ids(self._chunk(chunk, last))
            if len(cache) < self._cache_size:
                cache[chunk] = out
        return out

    def _word_entry(self, word: str) -> tuple[int, ...]:
        out = self._ids(self._chunk(word[:-1], True)) + (0,) if word[-1:] == "\0" else self._chunk_ids(word, False)
        if len(self._word_cache) < self._cache_size:
            self._word_cache[word] = out
        return out

    def _fast_word_ids(self, captions: list) -> np.ndarray | None:
        """`word_ids` with one join, one split and one cache lookup per chunk for the whole batch; None where
        a caption needs per-caption handling (a non-str, a NUL, an empty caption or trailing whitespace, or a
        token that can cross a space)."""
        try:
            joined = "\0 ".join(captions) + "\0"  # marks each caption's last chunk, scanned with end context
        except TypeError:
            return None
        if joined.count("\0") != len(captions) or _NEEDS_FULL_SCAN.search(joined):
            return None
        words, cache = joined.split(), self._word_cache
        try:
            parts = list(map(cache.__getitem__, words))
        except KeyError:
            if "\0" in words:  # a lone mark: an empty caption or one ending in whitespace
                return None
            parts = [cache[w] if w in cache else self._word_entry(w) for w in words]
        return np.fromiter(chain.from_iterable(parts), dtype=np.int64)[:-1]

    def word_ids(self, captions: Iterable[str]) -> np.ndarray:
        """Token ids of many captions end to end, one 0 between consecutive captions (ids are this
        tokenizer's: 1, 2, ... in order of first appearance). The same tokens as `tokenize_caption`, without
        building and re-splitting strings: what the CIDEr-D scorer consumes."""
        captions = captions if isinstance(captions, list) else list(captions)
        fast = self._fast_word_ids(captions) if captions else None
        if fast is not None:
            return fast
        parts: list[tuple[int, ...]] = []
        add = parts.append
        mid, last_cache, full_scan, sep = self._mid_ids, self._last_ids, _NEEDS_FULL_SCAN.search, (0,)
        for caption in captions:
            if not isinstance(caption, str):
                raise TypeError(f"caption must be a str, got {type(caption).__name__}: {caption!r}")
            add(sep)
            if full_scan(caption):
                add(self._ids(self._finish(self.raw_tokens(caption))))
                continue
            chunks = caption.split()
            if not chunks:
                continue
            last = chunks.pop()
            try:
                parts += list(map(mid.__getitem__, chunks))  # all or nothing: a miss raises before extending
            except KeyError:
                parts += [mid[c] if c in mid else self._chunk_ids(c, False) for c in chunks]
            tail = last_cache.get(last)
            add(self._chunk_ids(last, True) if tail is None else tail)
        if parts:
            parts[0] = ()
        return np.fromiter(chain.from_iterable(parts), dtype=np.int64)

    def tokenize(self, captions_for_image: dict) -> dict:
        """pycocoevalcap's interface: {id: [{"caption": str}, ...]} -> {id: [tokenized str, ...]}."""
        return {k: [self.tokenize_caption(c["caption"]) for c in v] for k, v in captions_for_image.items()}

    def __call__(self, captions: Iterable[str]) -> list[str]:
        return [self.tokenize_caption(c) for c in captions]


_DEFAULT = PTBTokenizer()


def tokenize_caption(caption: str) -> str:
    return _DEFAULT.tokenize_caption(caption)


def ptb_tokenize(captions: Iterable[str]) -> list[str]:
    """Tokenize many captions (module-level tokenizer with a shared cache)."""
    return _DEFAULT(captions)


def ptb_word_ids(captions: Iterable[str]) -> np.ndarray:
    """`PTBTokenizer.word_ids` with the module-level tokenizer (shared cache and vocabulary)."""
    return _DEFAULT.word_ids(captions)


if __name__ == "__main__":
    for line in sys.stdin:
        print(tokenize_caption(line.rstrip("\n")))
