"""The pure-Python PTB tokenizer against pycocoevalcap's Java PTBTokenizer (CoreNLP 3.4.1), token for token."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from hf_captioners.metrics.cider.ptb_tokenizer import PTBTokenizer, ptb_tokenize, tokenize_caption

sys.path.insert(0, str(Path(__file__).parent))
from _caption_corpus import CORPUS  # noqa: E402

requires_java = pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap's PTBTokenizer needs `java` on PATH")

# Targeted cases: every token class the lexer has, one line each (checked against Java below).
EDGE_CASES = [
    "I'm you're we'll they'd she's it's 'tis 'twas gonna wanna gotta lemme gimme cannot Cannot",
    "don'ts y'all Y'know o'clock rock'n'roll 'em 'cause 'til ma'am c'mon ain't shan't",
    "Dogs' bones, James's car, the 90's, '90s rock, '60 x",
    "Numbers 3.14 .5 -5 +5 1,000,000 1.000,50 5,5 10:30 10:30pm 2nd 1990s 3.5mm $10k 5km",
    "it's 5 7/8 inches, 3/4 cup, 12/25/2014 date, 1-2-2014, 24/7, and/or, w/o, 1/2-inch",
    "call (800) 555-1212 or 800-555-1212 or 800 555 1212; in 2010 2011 2012; 555.123.4567",
    "wait . . . and then.... done.. ok. ...... ........",
    "a.k.a. e.g. i.e. vs. cf. etc a.m. p.m. U.S. Jan. Calif. No. 5 Fig. 3 fig. The",
    "He left at 5 p.m. The end. It was etc. And more. U.S. He said. the U.S. army. I. The",
    "Mr. and Mrs. Jones, Ph.D. and Jr. and St. Mary's. Mt. Fuji Ave. Q. Who? Inc. Co. Corp. Ltd.",
    "Ark. ark. Del. del. La. la. Mass. mass. Tex. tex. Wash. wash. Inc.a Co.C foo.bar x.y.z",
    "AT&T S&P-500 R&D rock & roll rock&roll &amp; &lt; &gt; &quot; &apos; &nbsp; &#39;",
    "x^2 a~b a|b a\\b 50% 3‰ + = < > << >> @home user@example.com #hashtag #1 __init__ *** \\*",
    "Hello-world---foo -- --- ---- ----- - ‐ ‑ ‒ – — ―",
    "‘single’ “double” «guillemets» „low“ ‚low‘ ′prime″ ``latex'' `x'",
    "café naïve résumé Zürich Москва 北京 東京タワー עברית العربية ｆｕｌｌ　ｗｉｄｔｈ！",
    "x ² ³ ¹ ½ ¼ ¾ ⅓ ⅔ ° × ÷ © ® ™ § ¶ • · … ¢ £ € ¥ 5¢ £3 €4 US$5",
    "Wow :) :( ;) :D :)x ^_^ c++ c# C++ Yahoo! OK! <b>bold</b> <br/>",
    "A (small) dog [left] and {right} ((double)) -LRB- -rrb-",
    "2014-01-02T10:30:00Z 10-20 1990-2000 3-D x-ray co-op pro- anti- non-U.S.",
    "emoji 😀 inside wo😀rd and at the end 🐶",
    "tabs\tand\u00a0non-breaking and ideographic\u3000spaces and zero\u200bwidth",
]


def _java_tokens(lines: list[str]) -> list[str]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as JavaPTBTokenizer

    out = JavaPTBTokenizer().tokenize({i: [{"caption": line}] for i, line in enumerate(lines)})
    return [out[i][0] for i in range(len(lines))]


@pytest.fixture(scope="module")
def java_reference():
    lines = CORPUS + EDGE_CASES
    return lines, _java_tokens(lines)


@requires_java
def test_identical_tokens_to_pycocoevalcap(java_reference):
    lines, expected = java_reference
    got = ptb_tokenize(lines)
    mismatches = [(line, e, g) for line, e, g in zip(lines, expected, got) if e != g]
    assert not mismatches, "\n".join(f"{line!r}\n  java: {e!r}\n  ours: {g!r}" for line, e, g in mismatches)


@requires_java
def test_pycocoevalcap_interface_and_fresh_cache(java_reference):
    lines, expected = java_reference
    tok = PTBTokenizer()
    got = tok.tokenize({"img": [{"caption": line} for line in lines]})
    assert got == {"img": expected}
    assert tok.tokenize({"img": [{"caption": line} for line in lines]}) == {"img": expected}  # cached path


def test_known_tokens_without_java():
    # facts of CoreNLP 3.4.1 as pycocoevalcap runs it (checked against Java when it is available, above)
    assert tokenize_caption("A man's dog isn't running, he can't.") == "a man 's dog is n't running he ca n't"
    assert tokenize_caption("A (small) dog.") == "a -lrb- small -rrb- dog"  # lower-cased -LRB- is not filtered
    assert tokenize_caption("call 800 555 1212 now") == "call 800\u00a0555\u00a01212 now"
    assert tokenize_caption("I cannot, gonna go") == "i can not gon na go"
    assert tokenize_caption("an emoji 😀 here") == "an emoji here"
    assert tokenize_caption("") == "" and tokenize_caption(" \t ") == ""
    assert tokenize_caption("U.S. at 5 p.m.") == "u.s. at 5 p.m."


def test_chunk_cache_equals_whole_caption_scan():
    tok = PTBTokenizer()
    for line in CORPUS + EDGE_CASES:
        whole = tok._finish(tok.raw_tokens(line))
        assert tok.tokenize_caption(line) == whole, line


def test_non_string_input_is_a_clear_error():
    with pytest.raises(TypeError, match="caption must be a str, got int"):
        tokenize_caption(3)
    with pytest.raises(TypeError, match="NoneType"):
        ptb_tokenize(["ok", None])
