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
is a space.

Which code points are letters, digits, word-internal marks or one-character symbols is not taken from
Python's Unicode tables (newer than the lexer's) but from tables observed from Java one code point at a time
(BMP; astral code points are two UTF-16 units to Java, deleted outside URL-like tokens, as here).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate, chain, filterfalse

import numpy as np

__all__ = ["PUNCTUATIONS", "PTBTokenizer", "ptb_tokenize", "ptb_word_ids", "tokenize_caption"]

# the tokens pycocoevalcap removes after tokenization (note: the parenthesis tokens are upper case here but
# lower case after -lowerCase, so "-lrb-" / "-rrb-" are never removed; kept as is for parity)
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                          "--", "...", ";"])


# Code point classes of CoreNLP 3.4.1's lexer (BMP), observed from Java one code point at a time in "a C b",
# "xCx", "Cx", "5C5" and "C,C" (tests/test_metrics_ptb_tokenizer.py checks them against Java): its Unicode
# tables are older than Python's, it counts many combining marks (and a few other code points) as word
# characters that cannot start a number-word, and it keeps many symbols as one-character tokens.
_JAVA_LETTERS = (
    "0041-005a 0061-007a 00aa 00b5 00ba 00c0-00d6 00d8-00f6 00f8-02c1 02c6-02d1 02e0-02e4 02ec 02ee 0370-0374 "
    "0376-0377 037a-037d 0386 0388-038a 038c 038e-03a1 03a3-03f5 03f7-0481 048a-0527 0531-0556 0559 0561-0587 "
    "05d0-05ea 05f0-05f2 0620-064a 066e-066f 0671-06d3 06d5 06e5-06e6 06ee-06ef 06fa-06fc 06ff 0710 0712-072f "
    "074d-07a5 07b1 07ca-07ea 07f4-07f5 07fa 0800-0815 081a 0824 0828 0840-0858 08a0 08a2-08ac 0904-0939 093d "
    "0950 0958-0961 0971-0977 0979-097f 0985-098c 098f-0990 0993-09a8 09aa-09b0 09b2 09b6-09b9 09bd 09ce "
    "09dc-09dd 09df-09e1 09f0-09f1 0a05-0a0a 0a0f-0a10 0a13-0a28 0a2a-0a30 0a32-0a33 0a35-0a36 0a38-0a39 "
    "0a59-0a5c 0a5e 0a72-0a74 0a85-0a8d 0a8f-0a91 0a93-0aa8 0aaa-0ab0 0ab2-0ab3 0ab5-0ab9 0abd 0ad0 0ae0-0ae1 "
    "0b05-0b0c 0b0f-0b10 0b13-0b28 0b2a-0b30 0b32-0b33 0b35-0b39 0b3d 0b5c-0b5d 0b5f-0b61 0b71 0b83 0b85-0b8a "
    "0b8e-0b90 0b92-0b95 0b99-0b9a 0b9c 0b9e-0b9f 0ba3-0ba4 0ba8-0baa 0bae-0bb9 0bd0 0c05-0c0c 0c0e-0c10 "
    "0c12-0c28 0c2a-0c33 0c35-0c39 0c3d 0c58-0c59 0c60-0c61 0c85-0c8c 0c8e-0c90 0c92-0ca8 0caa-0cb3 0cb5-0cb9 "
    "0cbd 0cde 0ce0-0ce1 0cf1-0cf2 0d05-0d0c 0d0e-0d10 0d12-0d3a 0d3d 0d4e 0d60-0d61 0d7a-0d7f 0d85-0d96 "
    "0d9a-0db1 0db3-0dbb 0dbd 0dc0-0dc6 0e01-0e30 0e32-0e33 0e40-0e46 0e81-0e82 0e84 0e87-0e88 0e8a 0e8d "
    "0e94-0e97 0e99-0e9f 0ea1-0ea3 0ea5 0ea7 0eaa-0eab 0ead-0eb0 0eb2-0eb3 0ebd 0ec0-0ec4 0ec6 0edc-0edf 0f00 "
    "0f40-0f47 0f49-0f6c 0f88-0f8c 1000-102a 103f 1050-1055 105a-105d 1061 1065-1066 106e-1070 1075-1081 108e "
    "10a0-10c5 10c7 10cd 10d0-10fa 10fc-1248 124a-124d 1250-1256 1258 125a-125d 1260-1288 128a-128d 1290-12b0 "
    "12b2-12b5 12b8-12be 12c0 12c2-12c5 12c8-12d6 12d8-1310 1312-1315 1318-135a 1380-138f 13a0-13f4 1401-166c "
    "166f-167f 1681-169a 16a0-16ea 1700-170c 170e-1711 1720-1731 1740-1751 1760-176c 176e-1770 1780-17b3 17d7 "
    "17dc 1820-1877 1880-18a8 18aa 18b0-18f5 1900-191c 1950-196d 1970-1974 1980-19ab 19c1-19c7 1a00-1a16 "
    "1a20-1a54 1aa7 1b05-1b33 1b45-1b4b 1b83-1ba0 1bae-1baf 1bba-1be5 1c00-1c23 1c4d-1c4f 1c5a-1c7d 1ce9-1cec "
    "1cee-1cf1 1cf5-1cf6 1d00-1dbf 1e00-1f15 1f18-1f1d 1f20-1f45 1f48-1f4d 1f50-1f57 1f59 1f5b 1f5d 1f5f-1f7d "
    "1f80-1fb4 1fb6-1fbc 1fbe 1fc2-1fc4 1fc6-1fcc 1fd0-1fd3 1fd6-1fdb 1fe0-1fec 1ff2-1ff4 1ff6-1ffc 2071 207f "
    "2090-209c 2102 2107 210a-2113 2115 2119-211d 2124 2126 2128 212a-212d 212f-2139 213c-213f 2145-2149 214e "
    "2183-2184 2c00-2c2e 2c30-2c5e 2c60-2ce4 2ceb-2cee 2cf2-2cf3 2d00-2d25 2d27 2d2d 2d30-2d67 2d6f 2d80-2d96 "
    "2da0-2da6 2da8-2dae 2db0-2db6 2db8-2dbe 2dc0-2dc6 2dc8-2dce 2dd0-2dd6 2dd8-2dde 2e2f 3005-3006 3031-3035 "
    "303b-303c 3041-3096 309d-309f 30a1-30fa 30fc-30ff 3105-312d 3131-318e 31a0-31ba 31f0-31ff 3400-4db5 "
    "4e00-9fcc a000-a48c a4d0-a4fd a500-a60c a610-a61f a62a-a62b a640-a66e a67f-a697 a6a0-a6e5 a717-a71f "
    "a722-a788 a78b-a78e a790-a793 a7a0-a7aa a7f8-a801 a803-a805 a807-a80a a80c-a822 a840-a873 a882-a8b3 "
    "a8f2-a8f7 a8fb a90a-a925 a930-a946 a960-a97c a984-a9b2 a9cf aa00-aa28 aa40-aa42 aa44-aa4b aa60-aa76 aa7a "
    "aa80-aaaf aab1 aab5-aab6 aab9-aabd aac0 aac2 aadb-aadd aae0-aaea aaf2-aaf4 ab01-ab06 ab09-ab0e ab11-ab16 "
    "ab20-ab26 ab28-ab2e abc0-abe2 ac00-d7a3 d7b0-d7c6 d7cb-d7fb f900-fa6d fa70-fad9 fb00-fb06 fb13-fb17 fb1d "
    "fb1f-fb28 fb2a-fb36 fb38-fb3c fb3e fb40-fb41 fb43-fb44 fb46-fbb1 fbd3-fd3d fd50-fd8f fd92-fdc7 fdf0-fdfb "
    "fe70-fe74 fe76-fefc ff21-ff3a ff41-ff5a ff66-ffbe ffc2-ffc7 ffca-ffcf ffd2-ffd7 ffda-ffdc"
)
_JAVA_DIGITS = (
    "0030-0039 0660-0669 06f0-06f9 07c0-07c9 0966-096f 09e6-09ef 0a66-0a6f 0ae6-0aef 0b66-0b6f 0be6-0bef "
    "0c66-0c6f 0ce6-0cef 0d66-0d6f 0e50-0e59 0ed0-0ed9 0f20-0f29 1040-1049 1090-1099 17e0-17e9 1810-1819 "
    "1946-194f 19d0-19d9 1a80-1a89 1a90-1a99 1b50-1b59 1bb0-1bb9 1c40-1c49 1c50-1c59 a620-a629 a8d0-a8d9 "
    "a900-a909 a9d0-a9d9 aa50-aa59 abf0-abf9 ff10-ff19"
)
_JAVA_WORD_EXTRA = (
    "02c2-02c5 02d2-02df 02e5-02eb 02ed 02ef-036f 0375 0378-0379 0384-0385 03f6 0483-0487 055a-055f 0591-05bd "
    "05bf 05c1-05c2 05c4-05c5 05c7 0615-061a 064b-065e 0670 06d6-06e4 06e7-06ed 06fd-06fe 070f 0711 0730-074c "
    "07a6-07b0 07eb-07f3 0900-0903 093c 093e-094e 0951-0955 0962-0963 0981-0983 09bc 09be-09c4 09c7-09c8 "
    "09cb-09cd 09d7 09e2-09e3 0a01-0a03 0a3c 0a3e-0a4f 0a81-0a83 0abc 0abe-0acf 0b82 0bbe-0bc2 0bc6-0bc8 "
    "0bca-0bcd 0c01-0c03 0c3e-0c56 0d3e-0d44 0d46-0d48 0e31 0e34-0e3a 0e47-0e4e 0eb1 0eb4-0ebc 0ec8-0ecd"
)
_JAVA_SYMBOLS = (
    "0024-0026 0028-002b 003c-003e 005b-005e 007b-007e 0080 00a1-00a9 00ac 00ae-00b4 00b6-00b9 00bc-00bf 00d7 "
    "00f7 037e 0387 0589 05be 05c0 05c3 05c6 05f3-05f4 0600-0603 0606-060c 0614 061b 061e-061f 066a 066d 06d4 "
    "0700-070d 07f6-07f8 0964-0965 0e3f 0e4f 1fbd 2016-2017 201a 201e-2023 2030-2038 203b 203e-2042 2044 2070 "
    "2074-207e 2080-208e 20a0 20a4 20ac 2100-2101 2103-2106 2108-2109 2114 2116-2118 211e-2123 2125 2127 2129 "
    "212e 213a-213b 2140-2144 214a-214d 214f 2153-215e 2190-2bff 3001-3002 3012 30fb ff01-ff0f ff1a-ff20 "
    "ff3b-ff40 ff5b-ff65 ffe0-ffe1 ffe5-ffe6"
)


def _char_class(ranges: str) -> str:
    """"0041-005a 00aa ..." -> a regex character-class body."""
    parts = []
    for r in ranges.split():
        lo, _, hi = r.partition("-")
        parts.append(re.escape(chr(int(lo, 16))) + (f"-{re.escape(chr(int(hi, 16)))}" if hi else ""))
    return "".join(parts)


_LETTERS = _char_class(_JAVA_LETTERS)
_DIGITS = _char_class(_JAVA_DIGITS)
_WORD_EXTRA = "\u00ad" + _char_class(_JAVA_WORD_EXTRA)  # soft hyphens vanish from words (see _word)

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
# one rule each, so that the longest wins ("J'art" over "J'")
APOWORDS = [f"{APOS}(?i:n){APOS}?", f"[lLdDjJ]{APOS}", f"(?i:dunkin){APOS}", f"(?i:somethin){APOS}", f"(?i:ol){APOS}",
            f"{APOS}(?i:em)", f"[A-HJ-XZn]{APOSETC}{LET}{{2}}{LET}*", f"{APOS}[2-9]0(?i:s)", f"{APOS}(?i:till?)",
            f"{LET}{LET}*[aeiouyAEIOUY]{APOSETC}[aeiouA-Z]{LET}*", f"{APOS}(?i:cause)", f"(?i:o){APOSETC}(?i:o)",
            r"(?i:cont'd\.?|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)"]
FULLURL = r"(?i:https?):\/\/[^ \t\n\f\r\"<>|(){}]+[^ \t\n\f\r\"<>|.!?(){},-]"
LIKELYURL = (r"(?:(?:(?i:www)\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})"
             r"|(?:(?:[^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+(?i:com|net|org|edu)))"  # ",-_" is a range, as in CoreNLP
             r"(?:\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?")
EMAIL = (r"<?[a-zA-Z0-9][^ \t\n\f\r\"<>|(){}\u00a0]*@(?:[^ \t\n\f\r\"<>|(){}.\u00a0]+\.)*"
         r"[^ \t\n\f\r\"<>|(){}.\u00a0]+>?")
TWITTER = f"@[a-zA-Z_][a-zA-Z_0-9]*|#{LETTER}+"
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
MISCSYMBOL = f"[{_char_class(_JAVA_SYMBOLS)}]"  # after all other rules: only what they leave
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
# or is (n, mode): emit the first n characters and scan the rest again (JFlex's yypushback), or, with mode
# "dup" / "acronym", emit the token and scan its final period again. Order matters only on ties: like JFlex,
# the longest match (token plus trailing context) wins, then the earliest rule. "[,;:\u3001]" after a period
# keeps it on its word.
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
    *[(apoword, None, _keep) for apoword in APOWORDS],
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
    (f"{WORD}\\.", "[,;:\u3001]", _word),
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
    (f"{HTHING}\\.", "[,;:\u3001]", lambda t: t.replace("\u00ad", "")),
    (HTHING, None, lambda t: t.replace("\u00ad", "")),
    (f"{THING}\\.", "[,;:\u3001]", _keep),
    (THING, None, _keep),
    (f"{THINGA}\\.", "[,;:\u3001]", lambda t: re.sub("(?i)&amp;", "&", t)),
    (THINGA, None, lambda t: re.sub("(?i)&amp;", "&", t)),
    ("'", "[A-Za-z][^ \t\n\r\u00a0]", lambda t: _quotes(t, True)),
    (REDAUX, None, lambda t: _quotes(t, False)),
    (QUOTES, None, lambda t: _quotes(t, False)),
    (MISCSYMBOL, None, _keep),
    ("(?i:&nbsp;)|[\0\u200b\u200e\u200f\ufeff \t\u00a0\u2000-\u200a\u3000]+", None, _SKIP),
]
_COMPILED = [(re.compile(f"({tok})({ctx})" if ctx else f"({tok})()"), action) for tok, ctx, action in _RULES]


def _first_chars(pattern: str) -> list | None:
    """One-character regexes that together match every character a match of `pattern` can start with (a
    superset), or None when that cannot be told (an empty match, a construct not handled): JFlex's scanner
    runs one automaton over all rules, so only rules that can start at a character are tried there."""
    from re import _compiler, _parser
    from re import _constants as c

    def first(items, flags):
        found = []
        for op, av in items:
            if op in (c.LITERAL, c.NOT_LITERAL, c.IN, c.ANY):
                found.append((op, av, flags))
                return found, False
            if op in (c.AT, c.ASSERT, c.ASSERT_NOT):  # zero-width
                continue
            if op is c.SUBPATTERN:
                sub, empty = first(av[3], (flags | av[1]) & ~av[2])
            elif op is c.ATOMIC_GROUP:
                sub, empty = first(av, flags)
            elif op is c.BRANCH:
                sub, empty = [], False
                for branch in av[1]:
                    more, may_be_empty = first(branch, flags)
                    sub += more
                    empty |= may_be_empty
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                sub, empty = first(av[2], flags)
                empty |= av[0] == 0
            else:
                raise ValueError(op)
            found += sub
            if not empty:
                return found, False
        return found, True

    try:
        parsed = _parser.parse(pattern)
        found, empty = first(parsed.data, parsed.state.flags)
        if empty:
            return None
        return [_compiler.compile(_parser.SubPattern(parsed.state, [(op, av)]), flags) for op, av, flags in found]
    except Exception:  # a Python whose private regex parser differs: every rule is tried everywhere
        return None


_FIRST = [(_first_chars(rule[0].pattern), rule) for rule in _COMPILED]
_RULES_AT: dict[str, list] = {}


def _rules_at(char: str) -> list:
    """The rules (in order) that can match at a position holding `char`."""
    rules = _RULES_AT.get(char)
    if rules is None:
        rules = _RULES_AT[char] = [rule for first, rule in _FIRST
                                   if first is None or any(one.fullmatch(char) for one in first)]
    return rules

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
_ASTRAL_CHAR = re.compile(f"[{_ASTRAL}]")
_NOT_JAVA_TEXT = re.compile(f"[\n\r\x0b\x0c\u2028\u2029{_ASTRAL}]")  # in a caption: to change for Java
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
# "No." before a digit: chunks whose last tokens look like that are scanned again with these next lines to
# find out. A caption scanned whole is kept for reuse only if it cannot end so.
_LAST_TOKEN_MAY_DEPEND = re.compile(r"(?:[A-Za-z](?:\.[A-Za-z])*|(?i:ca|figs?|prop|nos?|arts?|pp|op))\.?")
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
        for rx, action in _RULES_AT.get(text[i]) or _rules_at(text[i]):
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


def _lower(text: str) -> str:
    """Java's `-lowerCase` of space-separated tokens: `str.lower` but for the capital sigma, which Java makes
    final ("ς") when a cased letter precedes it and none follows within its word ("Σ-Σ" -> "σ-ς")."""
    if "\u03a3" not in text:
        return text.lower()
    return " ".join(_lower_sigma(t) if "\u03a3" in t else t.lower() for t in text.split(" "))


# as observed from Java: its cased letters, and what a word (for the final sigma) runs through
_JAVA_CASED = re.compile("[\u02b0-\u02b8\u02c0\u02c1\u02e0-\u02e4\u0345\u037a\u1d2c-\u1d61]")
_WORD_BREAK = re.compile("[\u3005\u3041-\u3094\u309d\u309e\u30a1-\u30fa\u30fc-\u30fe\u4e00-\u9fa5\uf900-\ufa2d]")


def _cased(c: str) -> bool:
    return unicodedata.category(c) in ("Lu", "Ll", "Lt") or _JAVA_CASED.match(c) is not None


def _in_word(c: str) -> bool:
    category = unicodedata.category(c)
    return (c in "-._\u058a\u2010\u2011" or category[0] in "LM" or category in ("Nd", "Cf")) \
        and _WORD_BREAK.match(c) is None


def _next_cased(chars) -> bool:
    for c in chars:
        if _cased(c):
            return True
        if not _in_word(c):
            return False
    return False


def _lower_sigma(token: str) -> str:
    return "".join(("\u03c2" if _next_cased(reversed(token[:k])) and not _next_cased(token[k + 1:]) else "\u03c3")
                   if c == "\u03a3" else c.lower() for k, c in enumerate(token))


def _finish(raw: list[str]) -> str:
    """Raw tokens of one chunk -> lower-cased, punctuation removed, space-joined."""
    words = _lower(" ".join(raw)).split(" ")
    return " ".join(w for w in words if w and w not in PUNCTUATIONS)


def _finish_line(line: str) -> str:
    """One lower-cased line of Java's output -> what pycocoevalcap keeps of it."""
    return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


_PLAIN_CHUNK = re.compile(r'(["(]?)([A-Za-z]+(?:-[A-Za-z]+)*|[0-9]+)(\'s)?([")]?)(,|\.|\.\.\.|[?!])?')
_SPLIT_WORDS = frozenset(["cannot", "gonna", "gotta", "lemme", "gimme", "wanna"])  # the rules that split letters
_ABBREVIATION = re.compile(f"{ABBREV1}|{ABBREV3}|{ABBREV4}\\.")  # a word whose "." can stay on it
_ONE_CHAR_TAILS = frozenset(",.?!")
_WRAP = {None: "", "": "", '"': "", "(": "-lrb- ", ")": " -rrb-", "'s": " 's"}  # quotes, tails: punctuation


def _plain_word(chunk: str, last: bool) -> str | None:
    """The tokens of the most common chunks without a scan: ASCII letters (hyphenated or not) or digits, perhaps
    with 's, perhaps in double quotes or parentheses, perhaps followed by one of , . ... ? !: the word lower-cased
    (then 's; between "-lrb-" and "-rrb-" for parentheses), unless a rule splits it, its "." could be an
    abbreviation's, "(xx)" is a smiley or, at a caption's end, the next line could change it.
    `tests/test_metrics_ptb_tokenizer.py` checks this against the scanner."""
    word, tail = (chunk[:-1], chunk[-1]) if chunk[-1:] in _ONE_CHAR_TAILS else (chunk, None)
    if word.isalpha() and word.isascii():  # ASCII letters, perhaps then one of , . ? !: no regex needed
        left = possessive = right = None
    else:
        match = _PLAIN_CHUNK.fullmatch(chunk)
        if match is None:
            return None
        left, word, possessive, right, tail = match.groups()
    lower = word.lower()
    if (lower in _SPLIT_WORDS or (last and _LAST_TOKEN_MAY_DEPEND.fullmatch(word) is not None)
            or (tail is not None and tail[0] == "." and _ABBREVIATION.fullmatch(word + ".") is not None)
            or (left == "(" and word == "xx" and right == ")")):
        return None
    return _WRAP[left] + lower + _WRAP[possessive] + _WRAP[right]


def _last_token_may_depend(raw: list[str]) -> bool:
    """Whether the raw tokens end like the ones a next line can change (whatever that next line was)."""
    last = raw[-2] if raw[-1:] == ["."] and len(raw) > 1 else raw[-1] if raw else ""
    return _LAST_TOKEN_MAY_DEPEND.fullmatch(last) is not None


def _join(parts) -> str:
    return " ".join(filter(None, parts))


def _type_error(caption) -> TypeError:
    return TypeError(f"caption must be a str, got {type(caption).__name__}: {caption!r}")


class _Stream:
    """A list of captions as pycocoevalcap hands it to Java: one text, one caption per line."""

    def __init__(self, captions: list[str]):
        for caption in captions:
            if not isinstance(caption, str):
                raise _type_error(caption)
        text = "\n".join(captions)
        if (text.count("\n") != len(captions) - 1 or any(b in text for b in "\r\x0b\x0c\u2028\u2029")
                or len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text)):  # (quick tests first)
            captions = [c if c.isascii() and c.isprintable() or not _NOT_JAVA_TEXT.search(c) else _java_text(c)
                        for c in captions]
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
        self.end_may_depend = _last_token_may_depend(raw)
        return [_finish_line(line) for line in _lower(_from_java(" ".join(raw))).split("\n")]


def _positions(items: list, value) -> list[int]:
    """Where `value` is in `items` (`list.index` scans at C speed; the value is rare)."""
    out, k = [], -1
    try:
        while True:
            k = items.index(value, k + 1)
            out.append(k)
    except ValueError:
        return out


def _new_stream(captions: list, streams: list) -> _Stream:
    streams.append(_Stream(captions))
    return streams[0]


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
        self._whole: dict[str, str] = {}  # caption scanned whole that cannot reach into the next line
        self._part_ids: dict[str, tuple[int, ...]] = {}  # a chunk's (or line's) tokens -> ids
        self._cache_size = cache_size
        self._vocab: dict[str, int] = {}  # token -> id (1, 2, ...), for word_ids
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
            word = _plain_word(chunk, last)
            if word is not None:
                return self._store(cache, chunk, word)
            n = len(chunk)
            raw = _scan(chunk + ("\n\n" if last else " \n"), 0, n)[0]
            out = _finish(raw)
            if last and _last_token_may_depend(raw):
                if any(_finish(_scan(chunk + nxt, 0, n)[0]) != out for nxt in _NEXT_LINES):
                    out = _STREAM
            self._store(cache, chunk, out)
        return out

    def _eof_chunk(self, chunk: str) -> str:
        out = self._eof.get(chunk)
        return self._store(self._eof, chunk, _finish(_scan(chunk)[0])) if out is None else out

    def _tokenize_list(self, captions: list, finish=None, start: int = 0, stop: int | None = None,
                       streams: list | None = None) -> list:
        """Each caption's token string (or `finish` of its parts: the tokens of its chunks, or of its line), for
        captions[start:stop] read as part of the whole list's stream; more than stop - start of them when the
        last one's tokens run into later lines. `streams` keeps the list's `_Stream` for the next call."""
        finish = finish or _join
        out: list = []
        add = out.append
        mid, last_cache, whole, full_scan = self._mid, self._last, self._whole, _NEEDS_FULL_SCAN.search
        n, streams = len(captions), [] if streams is None else streams
        stop, i, stream = n if stop is None else stop, start - 1, streams[0] if streams else None
        while i + 1 < stop:
            i += 1
            caption = captions[i]
            if not isinstance(caption, str):
                raise _type_error(caption)
            if full_scan(caption) is not None:
                line = whole.get(caption) if i + 1 < n else None
                if line is not None:
                    add(finish((line,)))
                    continue
                stream = stream or _new_stream(captions, streams)
                lines = stream.lines(i)
                if len(lines) == 1 and i + 1 < n and "<" not in caption and not stream.end_may_depend:
                    self._store(whole, caption, lines[0])  # nothing in it reaches into the next line
                out += [finish((line,)) for line in lines]
                i += len(lines) - 1
                continue
            chunks = caption.split()
            if not chunks:
                add(finish(()))
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
                    stream = stream or _new_stream(captions, streams)
                    tail = stream.tail(i, len(last))
            else:
                tail = self._eof_chunk(last)
            parts.append(tail)
            add(finish(parts))
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
        """A chunk's ids; with a final NUL (a caption's end before another line) a 0 after them, or None where
        they depend on that line."""
        last = word[-1:] == "\0"
        if not last and word.isalpha() and word.isascii():
            # the commonest chunk, ASCII letters only: its lower-cased self, as `_plain_word` would say
            lower = word.lower()
            if lower not in _SPLIT_WORDS:
                vocab = self._vocab
                return self._store(self._word_cache, word, (vocab.setdefault(lower, len(vocab) + 1),))
        chunk = word[:-1] if last else word
        plain = _plain_word(chunk, last)
        # the most common chunks skip `_chunk`, whose token-string cache only the string path reads
        if plain is not None and " " not in plain:  # one token
            vocab = self._vocab
            out = (vocab.setdefault(plain, len(vocab) + 1),) + (0,) * last
        elif plain is not None:
            out = self._ids(plain) + (0,) * last
        else:
            tokens = self._chunk(chunk, last)
            out = None if tokens is _STREAM else self._ids(tokens) + (0,) * last
        return self._store(self._word_cache, word, out)

    def _chunk_ids(self, words: list) -> list:
        """Each chunk's ids (a chunk marked with a final NUL ends a caption followed by another: its ids and a 0,
        or None where they depend on that next caption), new chunks in order of first appearance (which
        numbers new tokens)."""
        cache = self._word_cache
        try:
            return list(map(cache.__getitem__, words))
        except KeyError:
            fresh = {word: self._word_entry(word) for word in dict.fromkeys(filterfalse(cache.__contains__, words))}
            if any(word not in cache for word in fresh):  # a full cache: a bigger one for this call only
                cache = {**cache, **fresh}
            return list(map(cache.__getitem__, words))

    def word_ids(self, captions: Iterable[str]) -> np.ndarray:
        """Token ids of many captions end to end, one 0 between consecutive captions (ids are this
        tokenizer's: 1, 2, ... in order of first appearance). The same tokens as `ptb_tokenize(captions)`
        (one stream, in this order), without building and re-splitting strings: what the CIDEr-D scorer
        consumes. (pycocoevalcap's CIDEr tokenizes all references as one stream and all predictions as
        another; a caller interleaving them sees the same tokens except where a caption's end depends on
        the next caption.)

        One join, one split and one cache lookup per chunk for the whole list; the few captions that need
        more (a token that can cross a space, an end that depends on the next line, an empty caption or
        trailing whitespace) are scanned in place in the stream and spliced in."""
        captions = captions if isinstance(captions, list) else list(captions)
        try:
            joined = "\0 ".join(captions) + "\0"  # marks each caption's last chunk, scanned with end context
        except TypeError:  # a non-str: the caption-by-caption path names it
            joined = None
        if not captions or joined is None or joined.count("\0") != len(captions):  # (or a NUL in a caption)
            flat = chain.from_iterable(chain((0,), ids) for ids in self._tokenize_list(captions, self._parts_ids))
            return np.fromiter(flat, dtype=np.int64)[1:]
        n, streams = len(captions), []
        hits = [m.start() for m in _NEEDS_FULL_SCAN.finditer(joined)]
        if not hits:
            return np.concatenate(self._run(captions, joined, 0, n, streams))
        starts = np.cumsum(np.fromiter(map(len, captions), dtype=np.int64, count=n) + 2)  # where each caption's successor starts
        out, i = [], 0
        for h in [*np.unique(np.searchsorted(starts, hits, side="right")).tolist(), n]:
            if h < i:  # already read: an earlier caption's tokens ran into it
                continue
            if i < h:
                out += self._run(captions, joined[starts[i - 1] if i else 0 : starts[h - 1]], i, h, streams)
            i = self._in_place(captions, h, out, streams) if h < n else n
        return np.concatenate(out)

    def _run(self, captions: list, text: str, i: int, h: int, streams: list) -> list[np.ndarray]:
        """Ids of captions[i:h] (`text`: their part of the marked join) from the chunk cache, with the captions
        it cannot give (an end that depends on the next line, an empty one, trailing whitespace) scanned in place."""
        words = text.split()
        final = words.pop() if h == len(captions) else None  # the end of the stream
        parts = self._chunk_ids(words)
        odd = _positions(parts, None) + _positions(words, "\0")
        for k in odd:
            parts[k] = (-1, 0)  # a placeholder, then the caption's 0
        if final is not None and final != "\0":
            parts.append(self._ids(self._eof_chunk(final[:-1])))
        ids = np.fromiter(chain.from_iterable(parts), dtype=np.int64)
        if not odd and final != "\0":
            return [ids]
        ends = np.flatnonzero(ids == 0)  # where captions i, i + 1, ... end (but the list's last)
        hard = set(np.searchsorted(ends, np.flatnonzero(ids == -1)).tolist()) | ({h - 1 - i} if final == "\0" else set())

        def start(c: int) -> int:  # of caption i + c in `ids`
            return int(ends[c - 1]) + 1 if c else 0

        out, j = [], 0
        for c in sorted(hard):
            if j < c:
                out.append(ids[start(j) : start(c)])
            j = self._in_place(captions, i + c, out, streams) - i
        out.append(ids[start(j) :] if j < h - i else ids[:0])
        return out

    def _in_place(self, captions: list, i: int, out: list, streams: list) -> int:
        """Appends the ids of caption `i` scanned in place (and of later captions its tokens run into) to `out`,
        each with the 0 after it but for the list's last; returns the next caption to read."""
        lines = self._tokenize_list(captions, self._parts_ids, i, i + 1, streams)
        last = i + len(lines) == len(captions)
        out += [np.asarray(line + (0,) if k + 1 < len(lines) or not last else line, dtype=np.int64)
                for k, line in enumerate(lines)]
        return i + len(lines)

    def _parts_ids(self, parts) -> tuple[int, ...]:
        cache, out = self._part_ids, []
        for part in parts:
            ids = cache.get(part)
            out += self._store(cache, part, self._ids(part)) if ids is None else ids
        return tuple(out)

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
