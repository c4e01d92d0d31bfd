"""The pure-Python PTB tokenizer against pycocoevalcap's Java PTBTokenizer (CoreNLP 3.4.1), token for token.

pycocoevalcap hands Java a whole caption list as one stream (one caption per line), so the tests compare
lists, not single captions: seeded hostile lists against live Java where it is installed, and a committed
corpus of Java's outputs (tests/data/ptb_java_corpus.json) everywhere. Regenerate that corpus with Java:

    .venv/bin/python tests/test_metrics_ptb_tokenizer.py --write-corpus
"""

from __future__ import annotations

import datetime
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_captioners.metrics.cider import ptb_tokenizer
from hf_captioners.metrics.cider.ptb_tokenizer import PTBTokenizer, _Stream, ptb_tokenize, tokenize_caption

sys.path.insert(0, str(Path(__file__).parent))
from _caption_corpus import CORPUS  # noqa: E402

CORPUS_FILE = Path(__file__).parent / "data" / "ptb_java_corpus.json"
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


# Lists whose captions interact through the stream (each checked against Java, in the committed corpus).
STREAM_CASES = [
    ["Gate No.", "5 dogs"], ["Gate No.", "dogs"], ["Gate No.", " 5"], ["Gate No.", "", "5"], ["fig.", "12 3/4"],
    ["x I.", "The man"], ["x I.", "", "  The x"], ["x I.", "The"], ["x I. ", "The x"], ["x a.", "He x"],
    ["x A.", "<b> y"], ["x A.", "<b>y"], ["x A. <b>", "y"], ["in the U.S.", "A man"], ["x I. The", "y"], ["x I. The"],
    ["x :)"], ["x :)", ""], ["x :) "], ["x '90"], ["x '90", "y"], ["x Inc."], ["x Inc.", ""], ["Inc.5"], ["est.?"],
    ["Inc.?x"], ["x Inc.", "foo"], ["x Inc.", "Foo"], ["58.c"], ["58.c", "x"], ["v2.x", "y"], ["8.x!"],
    ['x <a b="y', 'z"> w', "q"], ['<p q="', "", '"> x'], ["a http://x.org/a😀", "b"], ["wo😀rd 🐶", "x"],
    ["S&P-500ca.", "1,000 x"], ["S&P-500I.", "The x"], ["x Σ-Σ ΑΣ-Σ", "y"], ["Fi.、x", "O'o J'art"],
    ["No.\t5", "x"], ["a\nb No.", "5"], ["x I.\u0085The x"], ["No.\u00855"], ["", "", "a", ""], ["", "x"], [""],
]

_WORDS = ["a", "the", "dog", "man", "of", "in", "on", "with", "gate", "sign", "two", "red", "is", "and", "x", "i", "s"]
_CAPS = ["The", "A", "He", "It", "This", "Dogs", "New", "According", "However", "But", "In", "We", "I", "X", "ABC",
         "NASA", "Yet", "You", "Q"]
_ABBREVS = ["No.", "no.", "Nos.", "Fig.", "fig.", "Figs.", "U.S.", "u.s.", "p.m.", "a.m.", "Mr.", "Mrs.", "Ms.", "Dr.",
            "St.", "Inc.", "Co.", "Corp.", "Ltd.", "Jr.", "etc.", "vs.", "cf.", "Calif.", "Ark.", "Mass.", "Miss.",
            "Jan.", "Sept.", "Mon.", "est.", "tel.", "ft.", "sq.", "I.", "A.", "x.", "e.g.", "i.e.", "a.k.a.", "Ph.D.",
            "non-U.S.", "U.S.-U.K.", "ca.", "op.", "pp.", "art.", "Gov.", "Lt.", "Mt.", "Ave.", "Bros.", "al.", "Pa.",
            "Tex.", "Wash.", "Dept.", "Mfg.", "Capt.", "Esq.", "seq."]
_NUMBERS = ["5", "12", "3.14", ".5", "-5", "+5", "1,000", "1.000,50", "10:30", "1990s", "2nd", "'90", "'90s", "2014",
            "12/25/2014", "1-2-2014", "24/7", "3-D", "1990-2000", "5km", "٣", "५", "3.x", "v2.x", "8.X", "58.c",
            "IMG_01.JPG", "a.b.txt", "8.sh"]
_GROUPS = ["800 555 1212", "555-1212", "(800) 555-1212", "800.555.1212", "12 345", "2010 2011 2012", "1 2 3 4",
           "+1 800 555 1212", "++44 20 7946 0958", "(12)345 6789", "555\u00a01212"]
_FRACTIONS = ["5 7/8", "1/2", "3\\/4", "5-7/8", "½", "¾", "⅓", "⅝", "1 1/2", "7/8", "1\u00a01/2", "1⁄2"]
_DOTS = [". . .", ". .", ".", "..", "...", "....", "......", "…", ". . . .", ".\u00a0.\u00a0.", "?", "!", "?!", "\u0085"]
_QUOTES = ['"', "'", "``", "''", "‘", "’", "“", "”", "«", "»", "„", "‚", "`", "&quot;", "&apos;", "\u0091", "\u0094",
           "‹", "›", "‛"]
_BRACKETS = ["(", ")", "[", "]", "{", "}", "-LRB-", "-rrb-", "(("]
_SGML = ["<b>", "</b>", "<br/>", '<a href="x y">', "<a href=x>", "<a", ">", "<", "<!-- c -->", "<p class=x>", "< b>",
         "<1>", "<?xml?>", "</a >", "<i", "<<", ">>", "<-", "<3", "&", "&amp;", "&lt;", "&gt;", "&nbsp;", "&#39;",
         "&mdash;", "&eacute;", "&amp;amp;", "&foo;", "AT&T", "R&D", "AT&amp;T", "S&P-500"]
_URLS = ["http://example.com/a?b=1", "https://x.org/", "www.foo.org", "foo.com", "bar.edu/x", "user@example.com",
         "<a.b@c.d>", "@user", "#tag", "#1", "http://t.co/x.", "x.com/{b}"]
_DASHES = ["-", "--", "---", "----", "—", "–", "‐", "―", "x-ray", "co-op", "state-of-the-art", "pro-", "anti-", "_",
           "__init__", "e-mail", "U.S.-based"]
_CONTRACTIONS = ["can't", "won't", "I'm", "cannot", "gonna", "'tis", "'Twas", "y'all", "o'clock", "don'ts", "'em",
                 "'cause", "James's", "dogs'", "they'd", "c'mon", "l'amour", "O'Neil", "n't", "'s", "y'know",
                 "don`t", "A`ab"]
_SMILEYS = [":)", ":(", ";)", ":D", "^_^", ":-)", "=)", "<3", "x.x", "(^_^)", ":'(", "^.^", "~.<"]
_MISC = ["$5", "5%", "US$", "c++", "C#", "°", "×", "©", "™", "~", "^", "|", "\\", "*", "***", "=", "/", "@", "#",
         "+", "€5", "£3", "¢", "‰", "§", "•", "²", "H₂O", "\\*", "±"]
_UNICODE = ["😀", "🐶", "wo😀rd", "café", "naïve", "Zürich", "Москва", "北京", "עברית", "العربية", "ｆｕｌｌ", "İstanbul",
            "ß", "ǅ", "e\u0301", "\u00ad", "soft\u00adhyphen", "\ufeff", "x\u200by", "𝐀", "বাংলা", "தமிழ்", "हिन्दी",
            "→", "∞", "★", "、", "。", "ΟΔΟΣ-ΟΔΟΣ", "ΑΣ-Σ", "Ϳ", "Fi.、", "O'o", "J'art"]
_POOLS = [(_WORDS, 30), (_CAPS, 10), (_ABBREVS, 10), (_NUMBERS, 6), (_GROUPS, 3), (_FRACTIONS, 3), (_DOTS, 6),
          (_QUOTES, 5), (_BRACKETS, 4), (_SGML, 5), (_URLS, 2), (_DASHES, 4), (_CONTRACTIONS, 4), (_SMILEYS, 2),
          (_MISC, 4), (_UNICODE, 3)]
# separators: mostly a space, sometimes nothing (glued tokens), other spaces and line breaks
_SEPS = [" "] * 30 + ["", "", "", "  ", "\t", "\u00a0", "\u2002", "\u3000", "\u200b", "\u202f", "\u2009", " \u00a0 ",
                      "\u1680", "\u205f", "\x1c", "\u2028", "\r", "\n", "\r\n", "\x0b", "\x0c"]
_STARTS = _CAPS + _NUMBERS + _GROUPS + _FRACTIONS + _SGML + _DOTS + _QUOTES + [" ", "\u00a0", "\t"]
_ENDS = _ABBREVS + _NUMBERS + _SMILEYS + ["<a", "<b", "'", '"', "x'", "y'"]
_SOUP = "abcxyzAIXTS0123456789 .  ,;:!?'\"`()[]{}<>/\\-_&#@$%*+=~^|\u00a0\t\u2009\u00ad\u2019\u201c\u00bd\u2026\u0085é😀"
_SPANNERS = ['<a b="x', 'y">', "<a b='", "'>", '<p q="', '">', '<a href="']


def _piece(rng: random.Random) -> str:
    pools, weights = zip(*_POOLS)
    return rng.choice(rng.choices(pools, weights)[0])


def _caption(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.05:
        return rng.choice(["", " ", "\t", "\u00a0", "  "])
    if r < 0.10:  # punctuation only
        marks = _DOTS + _QUOTES + _BRACKETS + ["-", ",", ";", ":", "<", ">"]
        return "".join(rng.choice(marks) + rng.choice(_SEPS) for _ in range(rng.randint(1, 4)))
    parts = ([rng.choice(_STARTS)] if rng.random() < 0.3 else []) + [_piece(rng) for _ in range(rng.randint(1, 9))]
    if rng.random() < 0.35:  # an end the next caption's start can change
        parts.append(rng.choice(_ENDS))
    out = parts[0] + "".join(rng.choice(_SEPS) + p for p in parts[1:])
    if rng.random() < 0.1:
        out += rng.choice([" ", "\t", "\u00a0", " .", "."])
    return out


def _wild_caption(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:  # character soup
        return "".join(rng.choice(_SOUP) for _ in range(rng.randint(0, 25)))
    if r < 0.45:
        return rng.choice(_SPANNERS) + rng.choice(_SEPS) + _caption(rng)
    if r < 0.6:  # a tag whose quoted attribute may run into the next captions
        return _caption(rng) + rng.choice(["", " "]) + rng.choice(_SPANNERS)
    return "".join(_piece(rng) for _ in range(rng.randint(1, 5)))  # glued pieces


def hostile_caption_lists(seed: int, n_lists: int, max_len: int = 12) -> list[list[str]]:
    """Seeded hostile caption lists: abbreviations, digit groups, fractions, dots, quotes, tags, entities,
    URLs, dashes, odd spaces and line breaks, emoji, empty captions, glued tokens; half the lists also hold
    character soup and tags that run over caption ends."""
    rng = random.Random(seed)
    lists = []
    for k in range(n_lists):
        wild = k % 2 == 1
        lists.append([_wild_caption(rng) if wild and rng.random() < 0.5 else _caption(rng)
                      for _ in range(rng.randint(1, max_len))])
    return lists


# the module's documented difference: line breaks other than "\n" are spaces (for Java they end the line,
# which shifts every later caption onto the wrong image in pycocoevalcap)
_OTHER_LINE_BREAKS = re.compile("[\r\x0b\x0c\u2028\u2029]")


def _java_lists(lists: list[list[str]]) -> list[list[str]]:
    """pycocoevalcap's own PTBTokenizer (Java) on each list, one stream per list."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as JavaPTBTokenizer

    out = []
    for captions in lists:
        java_in = [_OTHER_LINE_BREAKS.sub(" ", c) for c in captions]
        got = JavaPTBTokenizer().tokenize({0: [{"caption": c} for c in java_in]}).get(0, [])
        assert len(got) == len(captions), f"Java returned {len(got)} lines for {len(captions)} captions: {captions!r}"
        out.append(got)
    return out


def _mismatches(lists, expected, got) -> str:
    rows = []
    for captions, exp, res in zip(lists, expected, got):
        for i, (e, g) in enumerate(zip(exp, res)):
            if e != g:
                where = f"of {captions!r}" if len(captions) <= 12 else f"of {len(captions)}, around {captions[max(0, i - 1):i + 2]!r}"
                rows.append(f"caption {i} {where}\n  java: {e!r}\n  ours: {g!r}")
        if len(exp) != len(res):
            rows.append(f"{len(res)} results for {len(exp)} captions: {captions!r}")
    return "\n".join(rows)


def _in_stream(captions: list[str]) -> list[str]:
    """Every caption scanned in place in the stream: no chunk cache, no fast path."""
    stream, out = _Stream(captions), []
    while len(out) < len(captions):
        out += stream.lines(len(out))
    return out


def _from_ids(tok: PTBTokenizer, ids) -> list[str]:
    words = {v: k for k, v in tok._vocab.items()}
    text = " ".join("\n" if i == 0 else words[i] for i in ids.tolist())
    return [" ".join(line.split()) for line in text.split("\n")]


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


def test_stream_facts_without_java():
    # the end of one caption depends on the next one, and the last caption ends the stream (checked by Java
    # in the committed corpus, STREAM_CASES)
    assert ptb_tokenize(["Gate No.", "5 dogs"]) == ["gate no.", "5 dogs"]
    assert ptb_tokenize(["Gate No.", "dogs"]) == ["gate no", "dogs"]
    assert ptb_tokenize(["x I.", "The man"]) == ["x i", "the man"]
    assert ptb_tokenize(["x I.", "The"]) == ["x i.", "the"]
    assert ptb_tokenize(["x :)", "a"]) == ["x :-rrb-", "a"] and ptb_tokenize(["x :)"]) == ["x -rrb-"]
    assert ptb_tokenize(['x <a b="y', 'z"> w', "q"]) == ['x <a\u00a0b="y', 'z"> w', "q"]
    tok = PTBTokenizer()
    assert tok.tokenize({1: [{"caption": "x I."}], 2: [{"caption": "The man"}]}) == {1: ["x i"], 2: ["the man"]}


def test_line_breaks_inside_a_caption_are_spaces():
    # pycocoevalcap turns "\n" into a space itself; for the others Java would end the line there
    for br in ["\n", "\r", "\u2028", "\u2029", "\x0b", "\x0c"]:
        assert ptb_tokenize([f"Gate No.{br}5", f"x I.{br}The x"]) == ["gate no. 5", "x i the x"], repr(br)


def _load_corpus() -> dict:
    return json.loads(CORPUS_FILE.read_text(encoding="utf-8"))


def test_committed_java_corpus():
    corpus = _load_corpus()
    assert corpus["corenlp"].startswith("3.4.1") and corpus["date"] and CORPUS_FILE.stat().st_size < 300_000
    lists = [entry["captions"] for entry in corpus["lists"]]
    expected = [entry["java"] for entry in corpus["lists"]]
    got = [ptb_tokenize(captions) for captions in lists]
    assert not (msg := _mismatches(lists, expected, got)), msg
    fresh = PTBTokenizer()
    assert [fresh(captions) for captions in lists] == expected  # cold cache
    assert [fresh(captions) for captions in lists] == expected  # warm cache
    for captions, exp in zip(lists, expected):
        assert _from_ids(fresh, fresh.word_ids(captions)) == [" ".join(e.split()) for e in exp], captions


def test_fast_path_equals_in_stream_scan():
    # the chunk cache and the end-of-caption checks against scanning every caption in place (no Java needed)
    tok = PTBTokenizer()
    lists = hostile_caption_lists(7, 80) + STREAM_CASES + [CORPUS + EDGE_CASES]
    for captions in lists + [a + b for a, b in zip(lists, reversed(lists))]:  # cached captions, new neighbours
        assert tok(captions) == _in_stream(captions), captions
        assert _from_ids(tok, tok.word_ids(captions)) == [" ".join(s.split()) for s in tok(captions)], captions


def test_captions_that_need_the_stream_are_spliced_into_the_one_pass_ids(monkeypatch):
    """A list with captions the chunk cache cannot give: those are scanned in place and spliced in, the rest
    comes from one pass over the list; the tokens must be those of scanning every caption in place, whatever
    stands at the boundaries (an end that depends on the next line, a tag that runs into it, empty captions)."""
    tok = PTBTokenizer()
    in_place = []
    scan = tok._tokenize_list
    monkeypatch.setattr(tok, "_tokenize_list", lambda c, f=None, start=0, stop=None, streams=None: in_place.append(
        (start, stop)) or scan(c, f, start, stop, streams))
    plain = [c for c in CORPUS if c == c.strip() and not ptb_tokenizer._NEEDS_FULL_SCAN.search(c)]
    plain += ["x I.", "Gate No.", "a dog", "No"]
    hard = ["call 800 555 1212 now", "The man", "5 dogs", "5", "", "  ", "trailing ", 'x <a b="y', 'z"> w', "a . . . b",
            "x I. The dog", "1 2", "x :)"]
    rng = random.Random(0)
    for _ in range(80):
        captions = [rng.choice(hard if rng.random() < 0.3 else plain) for _ in range(rng.randint(1, 14))]
        got = _from_ids(tok, tok.word_ids(captions))
        assert got == [" ".join(s.split()) for s in _in_stream(captions)], captions
    in_place.clear()
    captions = plain[:5] + ["1 2"] + plain[5:9] + ["x I.", "a cat", "trailing "] + plain[9:12] + ["x I."]
    assert _from_ids(tok, tok.word_ids(captions)) == [" ".join(s.split()) for s in _in_stream(captions)]
    # scanned in place: the phone-like number, "I." before a line (not at the end of the stream), trailing space
    assert in_place == [(5, 6), (10, 11), (12, 13)]
    for captions in (plain[:3] + ['x <a b="y', 'z"> w'] + plain[3:5], ["a nul\0 here", "b"]):  # a tag over a line
        assert _from_ids(tok, tok.word_ids(captions)) == [" ".join(s.split()) for s in _in_stream(captions)]


@requires_java
@pytest.mark.parametrize("seed", [101, 102, 103, 104, 105])
def test_fresh_hostile_lists_against_java(seed):
    lists = hostile_caption_lists(seed, 8, max_len=25)
    expected = _java_lists(lists)
    got = [ptb_tokenize(captions) for captions in lists]
    assert not (msg := _mismatches(lists, expected, got)), msg


def _class_edge_chars(seed: int) -> list[str]:
    """Each BMP character at an edge of the module's code point tables (observed from Java), and a seeded sample
    of the others (surrogates excluded)."""
    edges = set()
    for table in (ptb_tokenizer._JAVA_LETTERS, ptb_tokenizer._JAVA_DIGITS, ptb_tokenizer._JAVA_WORD_EXTRA,
                  ptb_tokenizer._JAVA_SYMBOLS):
        for r in table.split():
            lo, _, hi = r.partition("-")
            edges.update({int(lo, 16) - 1, int(lo, 16), int(hi or lo, 16), int(hi or lo, 16) + 1})
    points = edges | set(random.Random(seed).sample(range(1, 0x10000), 1500))
    return [chr(c) for c in sorted(points) if 0 < c < 0x10000 and not 0xD800 <= c < 0xE000]


@requires_java
def test_code_point_classes_against_java():
    chars = [c for c in _class_edge_chars(5) if not _OTHER_LINE_BREAKS.match(c) and c != "\n"]
    captions = [f"a {c} b x{c}x {c}x 5{c}5 {c},{c} ΟΔΟΣ{c}ΑΣ" for c in chars]
    expected = _java_lists([captions])
    assert not (msg := _mismatches([captions], expected, [ptb_tokenize(captions)])), msg


def write_java_corpus(path: Path = CORPUS_FILE, seed: int = 2024, n_lists: int = 240) -> None:
    """Java's outputs (through pycocoevalcap's PTBTokenizer) on STREAM_CASES and seeded hostile lists."""
    lists = STREAM_CASES + hostile_caption_lists(seed, n_lists)
    java = _java_lists(lists)
    version = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    header = {
        "about": "pycocoevalcap's Java PTBTokenizer on caption lists, one call (one stream) per list",
        "corenlp": "3.4.1 (stanford-corenlp-3.4.1.jar of pycocoevalcap 1.2)",
        "java": version,
        "date": datetime.date.today().isoformat(),
        "generator": f"tests/test_metrics_ptb_tokenizer.py: STREAM_CASES + hostile_caption_lists({seed}, {n_lists})",
        "note": "line breaks other than \\n were spaces in Java's input (ptb_tokenizer's documented difference)",
    }
    rows = ",\n".join(json.dumps({"captions": c, "java": j}) for c, j in zip(lists, java))
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(header, indent=1)[:-2] + ',\n "lists": [\n' + rows + "\n]}\n", encoding="utf-8")


if __name__ == "__main__" and sys.argv[1:] == ["--write-corpus"]:
    write_java_corpus()
    print(f"wrote {CORPUS_FILE} ({CORPUS_FILE.stat().st_size} bytes)")


def test_plain_words_skip_the_scan_and_agree_with_it():
    """The scan-free path for chunks of ASCII letters (hyphenated or not) or digits, perhaps with 's, perhaps in
    double quotes or parentheses, perhaps followed by , . ... ? ! must give the scanner's tokens in the middle of a
    caption, whatever chunk follows, and at its end, whatever line follows; split words, abbreviations before a
    period and one-letter / abbreviation-like endings go through the scanner."""
    from hf_captioners.metrics.cider import ptb_tokenizer as ptb
    from hf_captioners.metrics.cider.ptb_tokenizer import _NEXT_LINES, _finish, _plain_word, _scan

    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def random_word() -> str:
        return "".join(rng.choice(letters) for _ in range(rng.randint(1, 9)))

    words = ["cannot", "CanNot", "gonna", "Gotta", "lemme", "gimme", "wanna", "I", "a", "No", "nos", "Figs", "pp",
             "op", "ca", "Art", "www", "http", "com", "mr", "Mrs", "etc", "dont", "wont", "cant", "isnt", "nt", "y",
             "xx", "tis", "twas", "EU", "USA", "eg", "ie", "o", "d", "l", "j", "Joe", "bea", "n"]
    # every word of the lexer's abbreviation rules, with and without a final "s", as written and in other cases
    rules = re.sub(r"\(\?i?:|[()?\\]", "", "|".join((ptb.ABBREV1, ptb.ABBREV3, ptb.ABBREV4)))
    for name in re.findall("[A-Za-z]+", rules):
        for form in {name, name.rstrip("s")} - {""}:
            words += [form, form.lower(), form.upper(), form.capitalize()]
    words += [str(rng.randint(0, 10 ** rng.randint(1, 6))) for _ in range(300)] + ["0", "00", "5", "1882", "2026"]
    parts = ["pro", "anti", "non", "EU", "Canada", "U", "S", "cannot", "x", "o", "l", "d", "co", "Inc", "re"]
    hyphenated = ["-".join(rng.choice(parts) if rng.random() < 0.3 else random_word() for _ in range(rng.randint(2, 3)))
                  for _ in range(600)] + ["pro-x", "anti-war", "non-U", "x-ray", "e-mail", "co-op", "Inc-x", "U-S"]
    middle_next = (" \n", " The x", " x", " X", " 5", " <b>", ' "x"', " (x)", " ,", " .", " )", " -x")
    forms = [(left, possessive, right, tail) for left in ("", '"', "(") for possessive in ("", "'s")
             for right in ("", '"', ")") for tail in ("", ",", ".", "...", "?", "!")]
    bare = [form for form in forms if not form[0] and not form[2]]  # where a period could be an abbreviation's
    checked = 0
    cases = [(w, bare + rng.sample(forms, 12)) for w in dict.fromkeys(words)]
    cases += [(w, rng.sample(forms, 12)) for w in hyphenated] + [(random_word(), rng.sample(forms, 6)) for _ in range(1500)]
    for word, word_forms in cases:
        for chunk in [left + word + possessive + right + tail for left, possessive, right, tail in word_forms]:
            mid = _plain_word(chunk, last=False)
            if mid is not None:
                for nxt in middle_next:
                    assert mid == _finish(_scan(chunk + nxt, 0, len(chunk))[0]), (chunk, nxt)
                checked += 1
            end = _plain_word(chunk, last=True)
            if end is not None:
                for nxt in ("\n\n", *_NEXT_LINES):
                    assert end == _finish(_scan(chunk + nxt, 0, len(chunk))[0]), (chunk, nxt)
    assert checked > 25000
    assert _plain_word("cannot", False) is None and _plain_word("I", True) is None and _plain_word("Inc.", False) is None
    assert _plain_word("dog.", False) == "dog" and _plain_word('"Mr"', False) == "mr" and _plain_word("Mr.", False) is None
    assert _plain_word("(Dog)!", False) == "-lrb- dog -rrb-" and _plain_word("(xx)", False) is None
    assert _plain_word("Sea-Lion's,", False) == "sea-lion 's"


def test_first_character_dispatch_gives_the_tokens_of_trying_every_rule(monkeypatch):
    """At each position `_scan` tries only the rules that can start with the character there (their first
    characters read from the rule's regex); on hostile lists, the committed Java corpus and a character at every
    code point class edge, that gives the tokens of trying all rules everywhere."""
    assert all(first is not None for first, _ in ptb_tokenizer._FIRST)  # every rule's first characters are known
    assert len(ptb_tokenizer._rules_at("a")) < len(ptb_tokenizer._COMPILED) / 2
    chars = _class_edge_chars(6)
    texts = ["\n".join(captions) for captions in hostile_caption_lists(9, 60, max_len=25)]
    texts += ["\n".join(entry["captions"]) for entry in _load_corpus()["lists"]]
    texts += [f"a {c} b x{c}x {c}x 5{c}5 {c},{c} ΟΔΟΣ{c}ΑΣ" for c in chars]
    dispatched = [ptb_tokenizer._scan(text) for text in texts]

    class EveryRule(dict):
        def get(self, key, default=None):
            return ptb_tokenizer._COMPILED

    monkeypatch.setattr(ptb_tokenizer, "_RULES_AT", EveryRule())
    assert [ptb_tokenizer._scan(text) for text in texts] == dispatched
