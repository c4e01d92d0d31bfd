"""The n-gram cache: faithful building, exact chunked top-k, files, custom entries and bad input."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from hf_captioners.antarctic import AntarcticCache, CacheError, build_ngram_entries

CORPUS = [
    "A red circle on a blue background.",
    "a red circle, next to a green square",
    "There is a red circle on the left!",
    "a green square on a noisy background",
    "A blue star and a red circle.",
    "a green square drawn on a noisy background",
    "red circle; green square; blue star",
]


def reference_entries(corpus, n_uni, n_bi, min_freq):
    """Re-statement of dzryk/antarctic-captions `dataset.py` `get_cache` (first commit, lines 92-122): every
    caption `wordpunct_tokenize`d and lower-cased into ONE flat token list; the `topk` most common unigrams; bigrams
    with frequency >= 3 ranked by PMI = log2(n_ab * N / (n_a * n_b)) (nltk's BigramAssocMeasures.pmi), written
    with nltk's tokenizer and a Counter rather than its collocation finder. (The original's DataLoader shuffles the
    captions first, so its ties and cross-caption bigrams vary between runs; corpus order here.)"""
    from nltk import bigrams
    from nltk.tokenize import wordpunct_tokenize

    tokens = [t for text in corpus for t in wordpunct_tokenize(text.lower())]
    unigram_counts = Counter(tokens)
    unigrams = [w for w, _ in unigram_counts.most_common(n_uni)]
    pair_counts = Counter(bigrams(tokens))
    n = len(tokens)
    word_counts = Counter(tokens)
    scored = [
        (math.log2(c * n) - math.log2(word_counts[a] * word_counts[b]), (a, b))
        for (a, b), c in pair_counts.items() if c >= min_freq
    ]
    scored.sort(key=lambda item: (-item[0], item[1]))
    return unigrams + [" ".join(pair) for _, pair in scored[:n_bi]]


@pytest.mark.parametrize("sizes", [(10, 5, 3), (100, 100, 2), (3, 0, 3)])
def test_building_equals_independent_nltk_computation(sizes):
    assert build_ngram_entries(CORPUS, *sizes) == reference_entries(CORPUS, *sizes)


def test_building_keeps_flat_token_list_across_captions():
    # "background" ends one caption and "a" starts the next: the flat list makes ("background", "a") a bigram
    entries = build_ngram_entries(["x background", "a y", "z background", "a w", "q background", "a v"], 50, 50, 3)
    assert "background a" in entries


def random_cache(n=50, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return AntarcticCache([f"entry {i}" for i in range(n)], torch.randn(n, d, generator=g))


def test_embeddings_are_unit_norm_and_search_matches_brute_force_in_any_block_size():
    cache = random_cache(257, 8)
    assert torch.allclose(cache.embeddings.norm(dim=1), torch.ones(257), atol=1e-6)
    queries = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    expected_scores, expected_ids = (torch.nn.functional.normalize(queries, dim=1) @ cache.embeddings.T).topk(7, dim=1)
    for block in (7 * 5, 64 * 5, 1 << 25):
        scores, ids = cache.search(queries, 7, max_block_elements=block)
        assert torch.equal(ids, expected_ids)
        assert torch.allclose(scores, expected_scores, atol=1e-6)
        assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_faiss_flat_index_agrees_with_exact_search():
    pytest.importorskip("faiss")
    cache = random_cache(300, 16)
    queries = torch.randn(4, 16, generator=torch.Generator().manual_seed(2))
    exact = cache.search(queries, 5)[1]
    cache.build_index("flat")
    assert torch.equal(cache.search(queries, 5)[1], exact)
    cache.build_index("hnsw")
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(cache.search(queries, 5)[1].tolist(), exact.tolist())])
    assert recall >= 0.8
    cache.add(["new thing"], embeddings=queries[:1])
    assert cache.search(queries[:1], 1)[1].item() == 300


def test_save_and_load_roundtrip(tmp_path):
    cache = AntarcticCache(["a dog", "the cat", "two birds"], torch.randn(3, 4))
    cache.save_pretrained(tmp_path)
    assert (tmp_path / "entries.txt").read_text() == "a dog\nthe cat\ntwo birds\n"
    loaded = AntarcticCache.from_pretrained(tmp_path)
    assert loaded.entries == cache.entries and torch.equal(loaded.embeddings, cache.embeddings)


def test_import_original_release_format(tmp_path):
    emb = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    (tmp_path / "c.txt").write_text("a\n.\nred car\n")
    np.save(tmp_path / "c.npy", emb)
    cache = AntarcticCache.from_original(tmp_path / "c.txt", tmp_path / "c.npy")
    assert cache.entries == ["a", ".", "red car"]  # release caches keep punctuation unigrams
    assert np.allclose(cache.embeddings.numpy(), emb / np.linalg.norm(emb, axis=1, keepdims=True), atol=1e-6)


def test_add_embeds_only_the_new_entries():
    calls = []

    def encoder(texts):
        calls.append(list(texts))
        return torch.ones(len(texts), 4) + torch.arange(len(texts))[:, None]

    cache = AntarcticCache(["a", "b"], torch.eye(4)[:2], text_encoder=encoder)
    cache.add(["Geoff Hinton", "Ada Lovelace"])
    assert calls == [["Geoff Hinton", "Ada Lovelace"]]
    assert cache.entries[-2:] == ["Geoff Hinton", "Ada Lovelace"] and cache.embeddings.shape == (4, 4)


@pytest.mark.parametrize(
    ("entries", "embeddings", "message"),
    [
        ([], torch.zeros(0, 4), "no entries"),
        (["a", "b", "a"], torch.randn(3, 4), "duplicate entries 'a'"),
        (["a", "..."], torch.randn(2, 4), "only punctuation"),
        (["a", "  "], torch.randn(2, 4), "whitespace-only"),
        (["a", "b"], torch.randn(3, 4), "2 entries but 3 embedding rows"),
        (["a", "b"], torch.tensor([[1.0, 0.0], [float("nan"), 1.0]]), "NaN or infinite embeddings in rows 1"),
        (["a", "b"], torch.tensor([[1.0, 0.0], [0.0, 0.0]]), "all-zero"),
        (["a", "b"], torch.randn(2, 4, 1), "2-D"),
    ],
)
def test_bad_entries_and_embeddings_raise_clear_errors(entries, embeddings, message):
    with pytest.raises(CacheError, match=message):
        AntarcticCache(entries, embeddings)


def test_bad_inputs_for_corpus_add_and_release_files(tmp_path):
    with pytest.raises(CacheError, match="empty corpus"):
        build_ngram_entries(["", "   "])
    cache = random_cache(3, 4)
    with pytest.raises(CacheError, match="already in the cache"):
        cache.add(["entry 1"], embeddings=torch.randn(1, 4))
    with pytest.raises(CacheError, match="only punctuation"):
        cache.add(["?!"], embeddings=torch.randn(1, 4))
    with pytest.raises(CacheError, match="dim 5, the cache has 4"):
        cache.add(["new"], embeddings=torch.randn(1, 5))
    with pytest.raises(CacheError, match="no text encoder"):
        cache.add(["new"])
    with pytest.raises(CacheError, match="queries must be"):
        cache.search(torch.randn(2, 5), 1)
    with pytest.raises(CacheError, match="k=9"):
        cache.search(torch.randn(2, 4), 9)
    (tmp_path / "c.txt").write_text("a\nb\nc\n")
    np.save(tmp_path / "short.npy", np.ones((2, 4), np.float32))
    with pytest.raises(CacheError, match=r"c.txt.*3 entries but 2 embedding rows"):
        AntarcticCache.from_original(tmp_path / "c.txt", tmp_path / "short.npy")
    np.save(tmp_path / "flat.npy", np.ones(12, np.float32))
    with pytest.raises(CacheError, match="2-D"):
        AntarcticCache.from_original(tmp_path / "c.txt", tmp_path / "flat.npy")
    np.save(tmp_path / "ints.npy", np.ones((3, 4), np.int64))
    with pytest.raises(CacheError, match="floating point"):
        AntarcticCache.from_original(tmp_path / "c.txt", tmp_path / "ints.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(CacheError, match="junk.npy: not a readable"):
        AntarcticCache.from_original(tmp_path / "c.txt", tmp_path / "junk.npy")


def test_compressed_index_saved_beside_the_cache_and_reloaded(tmp_path):
    pytest.importorskip("faiss")
    generator = torch.Generator().manual_seed(3)
    centres = torch.nn.functional.normalize(torch.randn(20, 32, generator=generator), dim=1)
    vectors = centres.repeat_interleave(50, 0) + 0.05 * torch.randn(1000, 32, generator=generator)
    cache = AntarcticCache([f"entry {i}" for i in range(1000)], vectors)
    queries = centres[:5] + 0.05 * torch.randn(5, 32, generator=generator)
    exact = cache.search(queries, 10)[1]
    cache.build_index("ivf-sq8", nlist=20, nprobe=20)
    assert torch.equal(cache.search(queries, 10)[1], exact)  # raw vectors present: exact by default
    approx = cache.search(queries, 10, use_index=True)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx.tolist(), exact.tolist())])
    assert recall >= 0.9

    cache.save_pretrained(tmp_path / "with_vectors")
    loaded = AntarcticCache.from_pretrained(tmp_path / "with_vectors")
    assert loaded.index is not None and loaded._index_kind == "ivf-sq8" and loaded.index.nprobe == 20
    assert torch.equal(loaded.search(queries, 10, use_index=True)[1], approx)
    assert AntarcticCache.from_pretrained(tmp_path / "with_vectors", load_index=False).index is None

    cache.build_index("ivf-sq8", nlist=20, nprobe=20, keep_embeddings=False)  # the index alone holds the cache
    assert cache.embeddings is None and cache.dim == 32
    assert torch.equal(cache.search(queries, 10)[1], approx)
    with pytest.raises(CacheError, match="index only"):
        cache.search(queries, 10, use_index=False)
    cache.save_pretrained(tmp_path / "index_only")
    only = AntarcticCache.from_pretrained(tmp_path / "index_only")
    assert only.embeddings is None and len(only) == 1000
    assert torch.equal(only.search(queries, 10)[1], approx)
    fast = AntarcticCache([f"entry {i}" for i in range(1000)], vectors).build_index(
        "ivf-fastscan-sq8", nlist=20, nprobe=20, pq_m=16, keep_embeddings=False)
    assert fast.index.k_factor == 32  # 4-bit codes scanned, the best 32 x k re-ranked by one-byte codes
    fast_found = fast.search(queries, 10)[1]
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(fast_found.tolist(), exact.tolist())]) >= 0.9
    fast.save_pretrained(tmp_path / "fastscan")
    for mmap in (False, True):
        again = AntarcticCache.from_pretrained(tmp_path / "fastscan", mmap_index=mmap)
        assert again._index_kind == "ivf-fastscan-sq8" and again.index.k_factor == 32
        assert torch.equal(again.search(queries, 10)[1], fast_found)
    graph = AntarcticCache([f"entry {i}" for i in range(1000)], vectors).build_index("hnsw-sq8", keep_embeddings=False)
    hnsw = graph.search(queries, 10)[1]
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hnsw.tolist(), exact.tolist())]) >= 0.9
    copy = only.copy().add(["new"], embeddings=queries[:1])
    assert len(copy) == 1001 and len(only) == 1000 and only.index.ntotal == 1000
    assert copy.search(queries[:1], 1)[1].item() == 1000
    (tmp_path / "index_only" / "cache.faiss").unlink()
    with pytest.raises(CacheError, match="without its cache.faiss"):
        AntarcticCache.from_pretrained(tmp_path / "index_only")


def test_large_ivf_lists_come_from_balanced_two_level_kmeans():
    """`train_index` gives an IVF of TWO_LEVEL_MIN_LISTS or more lists centroids from faiss's two-level k-means
    (unit vectors, for inner-product search) and leaves no list holding a large share of the entries; the
    trained index finds the exact top-10 of clustered data at a small nprobe."""
    faiss = pytest.importorskip("faiss")
    from hf_captioners.antarctic.retrieval_antarctic import TWO_LEVEL_MIN_LISTS, new_index, train_index

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, 16)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = centres[rng.integers(0, 2000, 40_000)] + 0.1 * rng.standard_normal((40_000, 16)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    index = new_index("ivf-sq8", 16, len(data), nlist=TWO_LEVEL_MIN_LISTS, nprobe=4)
    train_index(index, data[:20_000])
    assert index.is_trained and index.quantizer.ntotal == TWO_LEVEL_MIN_LISTS
    centroids = index.quantizer.reconstruct_n(0, TWO_LEVEL_MIN_LISTS)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)
    index.add(data)
    sizes = np.array([index.invlists.list_size(i) for i in range(index.nlist)])
    assert sizes.max() < 10 * len(data) / index.nlist  # balanced: no list holds many topics
    queries = data[:200] + 0.05 * rng.standard_normal((200, 16)).astype(np.float32)
    exact = faiss.IndexFlatIP(16)
    exact.add(data)
    truth = exact.search(queries, 10)[1]
    found = index.search(queries, 10)[1]
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]) >= 0.9


def test_every_ivf_kind_trains_on_64_vectors_a_list():
    """The refined kind wraps its IVF (faiss IndexRefine), whose list count must still set the sample size."""
    pytest.importorskip("faiss")
    from hf_captioners.antarctic.retrieval_antarctic import new_index, train_sample_size

    for kind in ("ivf", "ivf-sq8", "ivf-pq", "ivf-fastscan-sq8"):
        assert train_sample_size(new_index(kind, 32, 1000, nlist=20, pq_m=16)) == 64 * 20, kind
    assert train_sample_size(new_index("hnsw-sq8", 32, 1000)) == 100_000
