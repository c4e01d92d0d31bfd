"""A pure-Python equivalent of the tokenization step of pycocoevalcap's CIDEr / BLEU / ROUGE.

pycocoevalcap writes all captions of one call, one per line, into one file, runs Stanford CoreNLP 3.4.1's
`PTBTokenizer -preserveLines -lowerCase` on it in Java, splits the output at line breaks and drops a fixed
list of punctuation tokens. Scores are only comparable across papers if the tokens are the same, so this
module reproduces that behaviour, oddities included: "(" becomes "-lrb-" and survives the punctuation filter,
"cannot" becomes "can not", digit groups like "100 200 300" become one phone-number token joined by U+00A0,
emoji are deleted (but kept inside URLs), and, because the captions are one stream, the end of a caption can
depend on the next one ("x I." before "The man" gives "x i", before "dogs" "x i."; "No." keeps its period
before a digit), the end of the last caption is the end of the file ("x :)" alone gives "x -rrb-"), and an
SGML tag with a quoted attribute can run over a line break. `ptb_tokenize(list)` and `PTBTokenizer.tokenize`
treat their input as that one stream; `tokenize_caption` as a one-caption list.

The reproduction is a longest-match scanner over the lexer's token classes, checked token for token against
the Java tokenizer by `tests/test_metrics_ptb_tokenizer.py` (live on seeded hostile caption lists where Java
is installed, and against a committed corpus of Java's outputs everywhere). Speed comes from scanning each
whitespace-separated chunk once and caching it: only a few token classes (phone numbers, "5 7/8", ". . .",
SGML tags) can span a space, only a caption ending in a one-letter abbreviation or "No."-like word can take
its tokens from the next line, and only those captions are scanned in place in the stream.

Known, deliberate differences from pycocoevalcap's wrapper: it replaces "\\n" inside a caption by a space,
and so does this module, but it leaves the other line breaks ("\\r", "\\r\\n", U+2028, U+2029, "\\v",
"\\f"), which Java takes as line ends: every later caption then lands on the wrong image. Here each of them
is a space. Letters are classified with Python's Unicode tables (Java 17's; CoreNLP 3.4.1 was built against
older ones, which matters only for scripts added to Unicode recently).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate, chain

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
# U+0085 is a space to the trailing contexts, though as a token it is "..."
SPACE = "[ \t\u0085\u00a0\u2000-\u200a\u3000]"
SPACENL = "[ \t\u0085\u00a0\u2000-\u200a\u3000\n]"
# tags as CoreNLP 3.4.1 accepts them: plain spaces only, quoted attribute values (which may hold a line break)
SGML_NAME = "[A-Za-z][A-Za-z0-9_:.-]*"
SGML = (f"<(?:[!?][A-Za-z-][^>\\r\\n]*|{SGML_NAME}(?: +{SGML_NAME}(?: *= *(?:'[^']*'|\"[^\"]*\"))?)* */? *"
        f"|/{SGML_NAME} *)>")
APOS = "(?:['\u0092\u2019]|&apos;)"
APOSETC = f"(?:{APOS}|[`\u0091\u2018\u201b])"
REDAUX = f"{APOS}(?:[msdMSD]|(?i:re|ve|ll))"
SREDAUX = f"(?i:n){APOSETC}(?i:t)"
WORD = f"{LETTER}(?:{LETTER}|{DIGIT})*(?:[.!?]{LETTER}(?:{LETTER}|{DIGIT})*)*"
SWORD = "[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*"
NUM = f"(?:{DIGIT}*(?:[.:,\u00ad\u066b\u066c]{DIGIT}+)+|{DIGIT}+)"
NUMBER = f"[-+]?{NUM}"
HYPHEN = "[-_\u058a\u2010\u2011]"
# longest alternative first: `re` takes the first alternative that matches, JFlex the longest
ACRO2 = r"(?:(?i:U\.S\.-(?:U\.S\.S\.R|U\.K))|(?i:Canada|Sino|Korean|EU|Japan|non)-(?i:U\.S)|[A-Za-z](?:\.[A-Za-z])+)"
ACRO = r"(?:(?i:U\.S\.-(?:U\.S\.S\.R|U\.K))|(?i:Canada|Sino|Korean|EU|Japan|non)-(?i:U\.S)|[A-Za-z](?:\.[A-Za-z])*)"
THING = (f"(?:[dDoOlL]{APOSETC}{ALNUM})?{ALNUM}+"
         f"(?:{HYPHEN}(?:[dDoOlL]{APOSETC}{ALNUM})?{ALNUM}+)*")
HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:{ACRO2}\.|[A-Za-z0-9\u00ad]+))+"
THINGA = r"[A-Z]+(?:(?:[+&]|(?i:&amp;))[A-Z]+)+"
THING3 = r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?\/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"
APOWORD = (f"{APOS}(?i:n){APOS}?|[lLdDjJ]{APOS}|(?i:dunkin){APOS}|(?i:somethin){APOS}|(?i:ol){APOS}|{APOS}(?i:em)"
           f"|[A-HJ-XZn]{APOSETC}{LET}{{2}}{LET}*|{APOS}[2-9]0(?i:s)|{APOS}(?i:till?)"
           f"|{LET}{LET}*[aeiouyAEIOUY]{APOSETC}[aeiouA-Z]{LET}*|{APOS}(?i:cause)"
           r"|(?i:cont'd\.?|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)")
FULLURL = r"(?i:https?):\/\/[^ \t\n\f\r\"<>|(){}]+[^ \t\n\f\r\"<>|.!?(){},-]"
LIKELYURL = (r"(?:(?:(?i:www)\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})"
             r"|(?:(?:[^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+(?i:com|net|org|edu)))"  # ",-_" is a range, as in CoreNLP
             r"(?:\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?")
EMAIL = (r"<?[a-zA-Z0-9][^ \t\n\f\r\"<>|(){}\u00a0]*@(?:[^ \t\n\f\r\"<>|(){}.\u00a0]+\.)*"
         r"[^ \t\n\f\r\"<>|(){}.\u00a0]+>?")
TWITTER = f"[@\uff20][a-zA-Z_][a-zA-Z_0-9]*|[#\uff03]{LETTER}+"
# abbreviation lists observed in CoreNLP 3.4.1 (only whether the final "." stays attached matters here)
ABMONTH = "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
ABDAYS = "Mon|Tue|Tues|Wed|Thu|Thurs|Fri"
ABSTATE_CI = "Ala|Ariz|Calif|Colo|Conn|Ct|Dak|Fla|Ga|Ind|Kans?|Ky|Md|Mich|Minn|Mo|Mont|Neb|Nev|Okla|Penn|Tenn|Va|Vt|Wisc?|Wyo"
ABSTATE_CS = "A(?i:z)|A(?i:rk)|D(?i:el)|I(?i:ll)|L(?i:a)|M(?i:ass)|M(?i:iss)|O(?i:re)|P(?i:a)|T(?i:ex)|W(?i:ash)"
ABCOMP = "Inc|Cos?|Corp|Pp?tys?|Ltd|Plc|Bancorp|Bhd|Assn|Univ|Intl|Sys|Bldg"
ABNUM = "tel|est|ext|sq"
ABPTIT = r"Jr|Sr|Bros|(?:Ed|Ph)\.D|Blvd|Rd|Esq|etc|al|seq"
ABBREV1 = f"(?:(?i:{ABMONTH}|{ABDAYS}|{ABSTATE_CI}|{ABCOMP}|{ABNUM}|{ABPTIT})|{ABSTATE_CS})\\."
ABTITLE = ("Mr|Mrs|Ms|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|Cpl|Pvt|Mt|Capt"
           "|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det")
ABBREV4 = (f"(?:{ACRO}|(?i:{ABTITLE}|vs|Alex|Wm|Jos|Cie|a\\.k\\.a|cf|TREAS|Ph|Invt|Elec|Natl|M[ft]g|Dept|ft)"
           "|M(?i:iss)|[A-Za-z])")
ABBREV3 = r"(?i:ca|figs?|prop|nos?|arts?|pp|op)\."
PHONE = (r"(?:\([0-9]{2,3}\)[ \u00a0]?|(?:\+\+?)?(?:[0-9]{2,4}[\- \u00a0])?[0-9]{2,4}[\- \u00a0])[0-9]{3,4}[\- \u00a0]?[0-9]{3,5}"
         r"|(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}")
# the extensions CoreNLP 3.4.1 keeps on a file name (probed one by one against a list of common ones)
FILE_EXTENSIONS = ("bat|bmp|c|class|cgi|cpp|dll|docx?|exe|gif|gz|h|html?|jar|java|jpe?g|mov|mp3|pdf|php|pl|png|ppt|ps"
                   "|py|sql|tar|txt|wav|x|xml|zip")
SMILEY = r"[<>]?[:;=][\-o\*']?[\(\)DPdpO\\{@\|\[\]]"
ASIANSMILEY = r"[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)"
QUOTES = f"''|[`\u2018\u2019\u201a\u201b\u201c\u201d\u0091\u0092\u0093\u0094\u201e\u201f\u2039\u203a\u00ab\u00bb]{{1,2}}|{APOS}"
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


def _word(text):
    """Soft hyphens vanish from words; a "word" of soft hyphens only is a hyphen."""
    return text.replace("\u00ad", "") or "-"


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
    (WORD, REDAUX, _word),
    (SWORD, SREDAUX, lambda t: t.replace("\u00ad", "")),
    (WORD, None, _word),
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
    (f"{ACRO}\\.", f"{SPACENL}+(?:{ACRONYM_FOLLOWERS}|{SGML}){SPACENL}", (-1, "acronym")),
    (ABBREV1, SENTEND, (-1, "dup")),
    (ABBREV1, "(?s:..)", _keep),  # beats a longer WORD such as "Inc.a"
    (ABBREV1, None, (-1, "dup")),  # less than two characters from the end of the stream
    (ABBREV3, f"{SPACENL}?{DIGIT}", _keep),
    (f"{ABBREV4}\\.", None, _keep),
    (ABBREV4, SPACE, _keep),
    (ACRO, SPACENL, _keep),
    # file names ("58.c", "v2.x", "8.8.jpg") stay whole when a space or [!?.,] follows (placed after the
    # abbreviations, which win ties)
    (f"(?:{LETTER}|{DIGIT})+(?:\\.(?:{LETTER}|{DIGIT})+)*\\.(?i:{FILE_EXTENSIONS})",
     "[ \t\u00a0\u2000-\u200a\u3000\n\u0085!?.,]", _keep),
    (f"{APOS}[0-9][0-9]", SPACENL, _keep),
    (f"{WORD}\\.", "[,;:]", _word),
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
    ("(?i:&nbsp;)|[\0\u200b\u200e\u200f\ufeff \t\u00a0\u2000-\u200a\u3000]+", None, _SKIP),
]
_COMPILED = [(re.compile(f"({tok})({ctx})" if ctx else f"({tok})()"), action) for tok, ctx, action in _RULES]

# A caption is scanned chunk by chunk (split at whitespace, each chunk cached) unless a token or its trailing
# context can cross a space (phone numbers, "5 7/8", ". . .", "No. 5", "I. The", SGML tags) or the caption
# holds whitespace other than " " and "\t" (str.split() and CoreNLP disagree on some, and URLs and e-mail
# addresses run through others). The pattern starts with one character class so `re` can skip ahead quickly.
_RARE_SPACE = "\n\r\x0b\x0c\x1c-\x1f\x85\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_ASTRAL = "\U00010000-\U0010ffff"  # two UTF-16 units each for Java: kept inside URLs, deleted elsewhere
_NEEDS_FULL_SCAN = re.compile(
    f"[{_DIGITS}).<{_RARE_SPACE}{_ASTRAL}](?:(?<={DIGIT}) +{DIGIT}|(?<=[).])[ \t]{DIGIT}|(?<=\\.) \\."
    f"|(?<=(?<![A-Za-z0-9])[A-Za-z]\\.)[ \t]+(?:{ACRONYM_FOLLOWERS})(?:[ \t\0]|\\Z)|(?<=[<{_RARE_SPACE}{_ASTRAL}]))"
)
# pycocoevalcap turns "\n" inside a caption into a space; the other line breaks are spaces here (see the
# module docstring), one for one so that offsets into the stream stay those of the captions
_LINE_BREAKS = str.maketrans(dict.fromkeys("\n\r\x0b\x0c\u2028\u2029", " "))
_OTHER_LINE_BREAK = re.compile("[\r\x0b\x0c\u2028\u2029]")
_ASTRAL_CHAR = re.compile(f"[{_ASTRAL}]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _java_text(caption: str) -> str:
    """A caption as Java reads it from pycocoevalcap's file: line breaks as spaces, UTF-16 code units."""
    caption = caption.translate(_LINE_BREAKS)
    if _ASTRAL_CHAR.search(caption) is None:
        return caption
    return _ASTRAL_CHAR.sub(lambda m: _pair(ord(m.group())), caption)


def _pair(cp: int) -> str:
    cp -= 0x10000
    return chr(0xD800 + (cp >> 10)) + chr(0xDC00 + (cp & 0x3FF))


def _from_java(text: str) -> str:
    """Joins surrogate pairs again; a lone one is what Java writes for it in UTF-8, "?"."""
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("?", text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass"))
# A chunk ending a caption can take its tokens from the next line only through "X." before "The ..." and
# "No." before a digit; chunks that may end so are scanned again with these next lines to find out.
_END_MAY_DEPEND = re.compile(r"(?<![A-Za-z0-9])(?:[A-Za-z]|(?i:ca|figs?|prop|nos?|arts?|pp|op))\.\Z")
_NEXT_LINES = ("\n", "\n5", "\n 5", "\nThe x", "\n\n The x", "\nx", "\nX", "\n<b>", "\n<b> x")
_STREAM = object()  # cache value of such a chunk: its tokens depend on the next line


def _scan(text: str, pos: int = 0, end: int | None = None) -> tuple[list[str], int]:
    """Longest-match scan of the tokens that start in text[pos:end]. What follows `end` is trailing context
    only, as the rest of Java's input stream is (the end of `text` is the end of that stream). Returns the
    tokens and where the scan stopped: past `end` when the last token runs over it (an SGML tag with a line
    break in a quoted attribute)."""
    end = len(text) if end is None else end
    tokens, i = [], pos
    while i < end:
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
            if mode == "":
                keep = k if k > 0 else len(tok) + k
                tokens.append(tok[:keep])
                i += keep
            else:  # the final period is scanned again ("Inc." "." but "I. The" -> "I" ".", "Inc.5" -> "Inc." ".5")
                tokens.append(tok[0] if mode == "acronym" and len(tok) == 2 else tok)
                i = m.end(1) - 1
        else:
            tokens.append(action(tok))
            i = m.end(1)
    return tokens, i


def _finish(raw: list[str]) -> str:
    """Raw tokens of one chunk -> lower-cased, punctuation removed, space-joined."""
    words = " ".join(raw).lower().split(" ")
    return " ".join(w for w in words if w and w not in PUNCTUATIONS)


def _finish_line(line: str) -> str:
    """One line of Java's output -> what pycocoevalcap keeps of it."""
    return " ".join(w for w in line.lower().rstrip().split(" ") if w not in PUNCTUATIONS)


def _type_error(caption) -> TypeError:
    return TypeError(f"caption must be a str, got {type(caption).__name__}: {caption!r}")


class _Stream:
    """A list of captions as pycocoevalcap hands it to Java: one text, one caption per line."""

    def __init__(self, captions: list[str]):
        for caption in captions:
            if not isinstance(caption, str):
                raise _type_error(caption)
        text = "\n".join(captions)
        if text.count("\n") != len(captions) - 1 or _OTHER_LINE_BREAK.search(text) or _ASTRAL_CHAR.search(text):
            captions = [_java_text(c) for c in captions]
            text = "\n".join(captions)
        self.text, self.captions = text, captions
        self.ends = [acc + k for k, acc in enumerate(accumulate(map(len, captions)))]  # where each line ends

    def tail(self, i: int, chunk_len: int) -> str:
        """Tokens of the last chunk of caption `i` (a plain caption: no token crosses its line)."""
        end = self.ends[i]
        start = end - len(self.captions[i]) + len(self.captions[i].rstrip()) - chunk_len
        return _finish(_scan(self.text, start, end)[0])

    def lines(self, i: int) -> list[str]:
        """Tokens of caption `i` and of any later captions its last token runs into, one string each."""
        text, ends = self.text, self.ends
        end = ends[i]
        raw, pos = _scan(text, end - len(self.captions[i]), end)
        while pos > end:
            end = ends[bisect_left(ends, pos)]
            more, pos = _scan(text, pos, end)
            raw += more
        return [_finish_line(line) for line in _from_java(" ".join(raw)).split("\n")]


class PTBTokenizer:
    """Tokenizes caption lists exactly as pycocoevalcap does, without Java.

    pycocoevalcap writes all captions of a call, one per line, into one file for Java, so the tokens at the
    end of a caption can depend on the next one ("I." then "The man" gives "i"; "No." then "5 dogs" keeps
    "no."), the end of the last caption is the end of the file (where "x :)" gives "x -rrb-"), and an SGML
    tag can run over a line break. Lists are tokenized as that stream; each whitespace-separated chunk is
    scanned once and its final (lower-cased, punctuation-filtered) tokens are cached, so an ordinary caption
    costs a `str.split` and a few dictionary lookups, and only captions whose ends or contents can interact
    with their neighbours are scanned in place in the stream.
    """

    def __init__(self, cache_size: int = 1_000_000):
        self._mid: dict[str, str] = {}  # chunk followed by a space
        self._last: dict[str, object] = {}  # chunk that ends a caption followed by another line (or _STREAM)
        self._eof: dict[str, str] = {}  # chunk that ends the last caption of a list
        self._cache_size = cache_size
        self._vocab: dict[str, int] = {}  # token -> id (1, 2, ...), for word_ids
        self._mid_ids: dict[str, tuple[int, ...]] = {}
        # chunk -> ids; chunk + "\0" (end of a caption followed by another) -> ids + (0,), or None (_STREAM)
        self._word_cache: dict[str, tuple[int, ...] | None] = {}

    _finish = staticmethod(_finish)

    def _store(self, cache: dict, chunk: str, out):
        if len(cache) < self._cache_size:
            cache[chunk] = out
        return out

    def _chunk(self, chunk: str, last: bool = False):
        """Tokens of a chunk followed by a space or, `last`, by a line break; _STREAM for a `last` chunk
        whose tokens depend on what that next line holds."""
        cache = self._last if last else self._mid
        out = cache.get(chunk)
        if out is None:
            n = len(chunk)
            out = _finish(_scan(chunk + ("\n\n" if last else " \n"), 0, n)[0])
            if last and _END_MAY_DEPEND.search(chunk):
                if any(_finish(_scan(chunk + nxt, 0, n)[0]) != out for nxt in _NEXT_LINES):
                    out = _STREAM
            self._store(cache, chunk, out)
        return out

    def _eof_chunk(self, chunk: str) -> str:
        out = self._eof.get(chunk)
        return self._store(self._eof, chunk, _finish(_scan(chunk)[0])) if out is None else out

    def _tokenize_list(self, captions: list) -> list[str]:
        out: list[str] = []
        add = out.append
        mid, last_cache, full_scan = self._mid, self._last, _NEEDS_FULL_SCAN.search
        n, skip, stream = len(captions), 0, None
        for i, caption in enumerate(captions):
            if skip:
                skip -= 1
                continue
            if not isinstance(caption, str):
                raise _type_error(caption)
            if full_scan(caption) is not None:
                stream = stream or _Stream(captions)
                lines = stream.lines(i)
                out += lines
                skip = len(lines) - 1
                continue
            chunks = caption.split()
            if not chunks:
                add("")
                continue
            last = chunks.pop()
            try:
                parts = list(map(mid.__getitem__, chunks))
            except KeyError:
                parts = [mid[c] if c in mid else self._chunk(c) for c in chunks]
            if i + 1 < n or caption[-1] in " \t":  # trailing space: the end of the stream is out of reach
                tail = last_cache.get(last)
                if tail is None:
                    tail = self._chunk(last, True)
                if tail is _STREAM:
                    stream = stream or _Stream(captions)
                    tail = stream.tail(i, len(last))
            else:
                tail = self._eof_chunk(last)
            parts.append(tail)
            add(" ".join(filter(None, parts)))
        return out

    def raw_tokens(self, caption: str) -> list[str]:
        """Tokens of `caption` alone (a one-caption list) before lower-casing and punctuation removal."""
        if not isinstance(caption, str):
            raise _type_error(caption)
        return [_from_java(t) for t in _scan(_java_text(caption))[0]]

    def tokenize_caption(self, caption: str) -> str:
        """One caption, alone in its list -> the space-joined token string pycocoevalcap would produce."""
        return self._tokenize_list([caption])[0]

    def _ids(self, tokens: str) -> tuple[int, ...]:
        vocab = self._vocab
        return tuple(vocab.setdefault(w, len(vocab) + 1) for w in tokens.split())

    def _word_entry(self, word: str) -> tuple[int, ...] | None:
        if word[-1:] == "\0":
            tail = self._chunk(word[:-1], True)
            out = None if tail is _STREAM else self._ids(tail) + (0,)
        else:
            out = self._mid_ids.get(word)
            if out is None:
                out = self._store(self._mid_ids, word, self._ids(self._chunk(word)))
        return self._store(self._word_cache, word, out)

    def _fast_word_ids(self, captions: list) -> np.ndarray | None:
        """`word_ids` with one join, one split and one cache lookup per chunk for the whole batch; None where
        a caption needs more (a non-str, a NUL, an empty caption or trailing whitespace, a token that can
        cross a space, an end that depends on the next caption)."""
        try:
            joined = "\0 ".join(captions) + "\0"  # marks each caption's last chunk, scanned with end context
        except TypeError:
            return None
        if joined.count("\0") != len(captions) or _NEEDS_FULL_SCAN.search(joined):
            return None
        words, cache = joined.split(), self._word_cache
        final = words.pop()
        if final == "\0" or "\0" in words:  # a lone mark: an empty caption or one ending in whitespace
            return None
        try:
            parts = list(map(cache.__getitem__, words))
        except KeyError:
            parts = [cache[w] if w in cache else self._word_entry(w) for w in words]
        if None in parts:
            return None
        parts.append(self._ids(self._eof_chunk(final[:-1])))
        return np.fromiter(chain.from_iterable(parts), dtype=np.int64)

    def word_ids(self, captions: Iterable[str]) -> np.ndarray:
        """Token ids of many captions end to end, one 0 between consecutive captions (ids are this
        tokenizer's: 1, 2, ... in order of first appearance). The same tokens as `ptb_tokenize(captions)`
        (one stream, in this order), without building and re-splitting strings: what the CIDEr-D scorer
        consumes. (pycocoevalcap's CIDEr tokenizes all references as one stream and all predictions as
        another; a caller interleaving them sees the same tokens except where a caption's end depends on
        the next caption.)"""
        captions = captions if isinstance(captions, list) else list(captions)
        fast = self._fast_word_ids(captions) if captions else None
        if fast is not None:
            return fast
        ids = self._ids
        flat = chain.from_iterable(chain((0,), ids(s)) for s in self._tokenize_list(captions))
        return np.fromiter(flat, dtype=np.int64)[1:]

    def tokenize(self, captions_for_image: dict) -> dict:
        """pycocoevalcap's interface: {id: [{"caption": str}, ...]} -> {id: [tokenized str, ...]}, all
        captions as one stream in the dict's order, as pycocoevalcap hands them to Java."""
        flat = self._tokenize_list([c["caption"] for v in captions_for_image.values() for c in v])
        out, k = {}, 0
        for key, v in captions_for_image.items():
            out[key], k = flat[k:k + len(v)], k + len(v)
        return out

    def __call__(self, captions: Iterable[str]) -> list[str]:
        return self._tokenize_list(captions if isinstance(captions, list) else list(captions))


_DEFAULT = PTBTokenizer()


def tokenize_caption(caption: str) -> str:
    return _DEFAULT.tokenize_caption(caption)


def ptb_tokenize(captions: Iterable[str]) -> list[str]:
    """Tokenize many captions (module-level tokenizer with a shared cache)."""
    return _DEFAULT(captions)


def ptb_word_ids(captions: Iterable[str]) -> np.ndarray:
    """`PTBTokenizer.word_ids` with the module-level tokenizer (shared cache and vocabulary)."""
    return _DEFAULT.word_ids(captions)


if __name__ == "__main__":  # stdin lines as one caption list, as pycocoevalcap would tokenize them
    for tokens in ptb_tokenize([line.rstrip("\n") for line in sys.stdin]):
        print(tokens)
