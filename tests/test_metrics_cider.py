"""CIDEr-D: equality with pycocoevalcap (scorer and end to end), known values, invariants, errors, evaluate module."""

from __future__ import annotations

import math
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_captioners.metrics import cider_d
from hf_captioners.metrics.cider.cider_d import CiderD

sys.path.insert(0, str(Path(__file__).parent))
from _caption_corpus import CORPUS  # noqa: E402

requires_java = pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap's PTBTokenizer needs `java` on PATH")
CIDER_DIR = Path(__file__).resolve().parents[1] / "src" / "hf_captioners" / "metrics" / "cider"


def reference_cider(hyps, refs, n=4, sigma=6.0):
    from pycocoevalcap.cider.cider import Cider

    score, scores = Cider(n=n, sigma=sigma).compute_score(
        {i: list(r) for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}
    )
    return score, np.asarray(scores)


def random_set(rng: random.Random, n_img: int, vocab: int = 12, max_len: int = 9):
    words = [f"w{i}" for i in range(vocab)]

    def sent():
        return " ".join(rng.choice(words) for _ in range(rng.randint(0, max_len)))

    return [sent() for _ in range(n_img)], [[sent() for _ in range(rng.randint(1, 6))] for _ in range(n_img)]


@pytest.mark.parametrize("seed", range(6))
def test_scorer_equals_pycocoevalcap_on_random_sets(seed):
    rng = random.Random(seed)
    hyps, refs = random_set(rng, n_img=rng.randint(2, 60))
    hyps[0] = ""  # empty hypothesis
    refs[-1] = ["w1"]  # one-word reference: 0 bigrams, the length quirk
    ours, ours_scores = CiderD().compute(hyps, refs)
    theirs, theirs_scores = reference_cider(hyps, refs)
    assert ours == pytest.approx(theirs, abs=1e-9)
    np.testing.assert_allclose(ours_scores, theirs_scores, atol=1e-9)


@pytest.mark.parametrize("sigma", [1.5, 3.0, 20.0])
def test_other_sigmas_equal_pycocoevalcap(sigma):
    # (pycocoevalcap always counts 1..4-grams whatever its `n`, so only n=4 is comparable)
    hyps, refs = random_set(random.Random(int(sigma)), n_img=30)
    ours, scores = CiderD(sigma=sigma).compute(hyps, refs)
    theirs, theirs_scores = reference_cider(hyps, refs, sigma=sigma)
    np.testing.assert_allclose(scores, theirs_scores, atol=1e-9)


def test_large_vocabulary_path_equals_packed_path():
    # > 2^15 distinct words switches from packed n-gram keys to dense ids; scores must not change
    rng = random.Random(0)
    hyps, refs = random_set(rng, n_img=40)
    filler = [" ".join(f"u{i * 50 + j}" for j in range(50)) for i in range(700)]
    big_hyps, big_refs = hyps + filler, refs + [[f] for f in filler]
    _, scores = CiderD().compute(big_hyps, big_refs)
    _, theirs = reference_cider(big_hyps, big_refs)
    np.testing.assert_allclose(scores, theirs, atol=1e-9)


def test_length_quirk_uses_bigram_counts():
    # 1-token vs 3-token: pycocoevalcap's delta is 0 - 2 bigrams (= 2), not 1 - 3 tokens; differs only at < 2 tokens
    hyps = ["a", "x y z q"]
    refs = [["a b c"], ["k l m n"]]
    _, scores = CiderD().compute(hyps, refs)
    _, theirs = reference_cider(hyps, refs)
    np.testing.assert_allclose(scores, theirs, atol=1e-12)


def test_known_values():
    refs = [["a dog runs on the grass"] * 3, ["a cat sleeps on a red sofa"] * 3]
    exact = cider_d(["a dog runs on the grass", "a cat sleeps on a red sofa"], refs)
    # every n-gram of each image appears only in that image: weights log(2) > 0, cosine 1 for n = 1..4
    assert exact["scores"] == pytest.approx([10.0, 10.0], abs=1e-9)
    assert exact["cider_d"] == pytest.approx(10.0, abs=1e-9)
    assert cider_d(["a dog runs on the grass"], [["a dog runs on the grass"]])["scores"] == [0.0]  # one image
    disjoint = cider_d(["zebra zebra", "giraffe"], [["a dog"], ["a cat"]])
    assert disjoint["scores"] == [0.0, 0.0]
    three = cider_d(["dog runs fast", "cat"], [["dog runs fast"], ["a cat"]])  # 3 tokens: no 4-gram
    assert three["scores"][0] == pytest.approx(7.5, abs=1e-9)
    assert cider_d([], [])["cider_d"] == 0.0


def test_pretokenized_input_skips_ptb():
    refs = [["A (small) dog."], ["A cat."]]
    raw = cider_d(["A (small) dog.", "A cat."], refs, tokenize=False)
    tokenized = cider_d(["A (small) dog.", "A cat."], refs)
    _, theirs = reference_cider(["A (small) dog.", "A cat."], refs)
    np.testing.assert_allclose(raw["scores"], theirs, atol=1e-12)
    assert raw["scores"] != tokenized["scores"]


@requires_java
def test_end_to_end_equals_pycocoevalcap_with_java_tokenizer():
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as JavaPTBTokenizer

    rng = random.Random(0)
    corpus = [c for c in CORPUS if c.strip()]
    preds = [rng.choice(corpus) if i % 3 else corpus[i % len(corpus)] for i in range(60)]
    refs = [rng.sample(corpus, rng.randint(1, 5)) for _ in range(60)]
    tok = JavaPTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in rs] for i, rs in enumerate(refs)})
    res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(preds)})
    theirs, theirs_scores = Cider().compute_score(gts, res)
    ours = cider_d(preds, refs)
    assert ours["cider_d"] == pytest.approx(theirs, abs=1e-6)
    np.testing.assert_allclose(ours["scores"], theirs_scores, atol=1e-6)


@requires_java
def test_predictions_and_references_are_two_streams_as_in_pycocoevalcap():
    """COCOEvalCap tokenizes gts and res in two Java calls, each one stream: the end of a caption ("No.", "I.")
    depends on the caption after it in ITS stream, not on the interleaved order."""
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as JavaPTBTokenizer

    preds = ["a dog at Gate No.", "5 dogs on a mat", "the letter I.", "The man rides", "a red square No.", "7 cats"]
    refs = [["a dog at gate no.", "the man at Gate No."], ["five dogs", "5 dogs on the mat"], ["a letter i"],
            ["The man rides a bike", "a man riding"], ["a red square", "No. 7 square"], ["seven cats", "cats"]]
    tok = JavaPTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in rs] for i, rs in enumerate(refs)})
    res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(preds)})
    theirs, theirs_scores = Cider().compute_score(gts, res)
    ours = cider_d(preds, refs)
    np.testing.assert_allclose(ours["scores"], theirs_scores, atol=1e-9)
    assert ours["cider_d"] == pytest.approx(theirs, abs=1e-9)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="2 predictions but 1 reference lists"):
        cider_d(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="references of example 1 must be a non-empty list"):
        cider_d(["a", "b"], [["a"], []])
    with pytest.raises(TypeError, match="prediction 1 must be a str, got NoneType"):
        cider_d(["a", None], [["a"], ["b"]])
    with pytest.raises(TypeError, match="reference 1 of example 0 must be a str, got int"):
        cider_d(["a"], [["a", 3]])
    with pytest.raises(TypeError, match="predictions must be a list of strings"):
        cider_d("a dog", [["a dog"]])


sentences = st.lists(st.sampled_from(["a", "dog", "cat", "runs", "on", "grass", "red", "the"]), max_size=8).map(" ".join)
eval_sets = st.integers(2, 8).flatmap(
    lambda n: st.tuples(st.lists(sentences, min_size=n, max_size=n),
                        st.lists(st.lists(sentences, min_size=1, max_size=4), min_size=n, max_size=n))
)


@settings(max_examples=60, deadline=None)
@given(eval_sets, st.randoms(use_true_random=False))
def test_invariants(data, rnd):
    hyps, refs = data
    _, scores = CiderD().compute(hyps, refs)
    if any(r.split() for rs in refs for r in rs):  # pycocoevalcap crashes (max of empty df) otherwise
        _, theirs = reference_cider(hyps, refs)
        np.testing.assert_allclose(scores, theirs, atol=1e-9)  # the definition itself
    else:
        assert np.all(scores == 0)
    assert np.all(scores >= 0) and np.all(scores <= 10 + 1e-9)  # clipped cosines times a penalty <= 1
    perm = list(range(len(hyps)))
    rnd.shuffle(perm)
    _, permuted = CiderD().compute([hyps[i] for i in perm], [refs[i] for i in perm])
    np.testing.assert_allclose(permuted, scores[perm], atol=1e-12)  # images are exchangeable
    shuffled_refs = [rnd.sample(r, len(r)) for r in refs]
    np.testing.assert_allclose(CiderD().compute(hyps, shuffled_refs)[1], scores, atol=1e-12)
    doubled = [r + r for r in refs]  # df counts images, and refs are averaged: duplicates change nothing
    np.testing.assert_allclose(CiderD().compute(hyps, doubled)[1], scores, atol=1e-12)


def test_plain_api_does_not_import_evaluate():
    import subprocess

    code = ("import sys; from hf_captioners.metrics import cider_d; cider_d(['a b'], [['a b']]); "
            "assert 'evaluate' not in sys.modules and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluate_module_loads_offline_and_matches(tmp_path, monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    metric = evaluate.load(str(CIDER_DIR))
    preds, refs = CORPUS[:20], [[c, CORPUS[(i + 7) % len(CORPUS)]] for i, c in enumerate(CORPUS[20:40])]
    got = metric.compute(predictions=preds, references=refs)
    want = cider_d(preds, refs)
    assert got["cider_d"] == pytest.approx(want["cider_d"], abs=1e-12)
    assert got["scores"] == pytest.approx(want["scores"], abs=1e-12)
    raw = metric.compute(predictions=["a b c d", "x"], references=[["a b c d"], ["y"]], tokenize=False)
    assert raw["scores"] == pytest.approx([10.0, 0.0])
    assert not math.isnan(raw["cider_d"])
