"""The n-gram cache of antarctic-captions: entries, L2-normalised CLIP text embeddings, exact and faiss top-k.

Like transformers' `RagRetriever`, it is a plain object (not an `nn.Module`) that the model owns and that can be
swapped at inference: its weights are data, saved beside the model as `entries.txt` + `cache.safetensors`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

__all__ = ["INDEX_KINDS", "AntarcticCache", "AntarcticRetriever", "CacheError", "build_ngram_entries", "new_index", "train_index"]

ENTRIES_NAME = "entries.txt"
EMBEDDINGS_NAME = "cache.safetensors"
INDEX_NAME = "cache.faiss"
# the last four store compressed codes only
INDEX_KINDS = ("flat", "ivf", "hnsw", "ivf-sq8", "ivf-pq", "hnsw-sq8", "ivf-fastscan-sq8")
REFINE_FACTOR = 32  # ivf-fastscan-sq8 re-ranks 32 x k candidates: 4-bit scores cannot order a topic's entries
# what each IVF kind stores in its lists, as a faiss factory string (`pq_m` sub-quantizers)
IVF_CODES = {"ivf": "Flat", "ivf-sq8": "SQ8", "ivf-pq": "PQ{pq_m}", "ivf-fastscan-sq8": "PQ{pq_m}x4fs,Refine(SQ8)"}
TWO_LEVEL_MIN_LISTS = 1024
TextEncoder = Callable[[list[str]], torch.Tensor]


class CacheError(ValueError):
    """A cache or corpus that cannot be used; the message names the source and the offending entries."""


def _preview(items: Sequence, limit: int = 5) -> str:
    shown = ", ".join(repr(x) for x in list(items)[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def build_ngram_entries(
    corpus: Iterable[str], num_unigrams: int = 25_000, num_bigrams: int = 25_000, min_bigram_freq: int = 3
) -> list[str]:
    """Cache entries as the release built them from COCO captions.

    All captions are lower-cased and `wordpunct_tokenize`d into ONE flat token list (so bigrams also span
    caption boundaries, as in the original); unigrams are the most frequent tokens, bigrams the collocations
    seen at least `min_bigram_freq` times ranked by PMI.
    """
    from nltk import FreqDist
    from nltk.collocations import BigramAssocMeasures, BigramCollocationFinder
    from nltk.tokenize import wordpunct_tokenize

    tokens = [token for text in corpus for token in wordpunct_tokenize(text.lower())]
    if not tokens:
        raise CacheError("corpus: no tokens to build a cache from (empty corpus or only whitespace)")
    unigrams = [word for word, _ in FreqDist(tokens).most_common(num_unigrams)]
    finder = BigramCollocationFinder.from_words(tokens)
    finder.apply_freq_filter(min_bigram_freq)
    bigrams = [" ".join(pair) for pair in finder.nbest(BigramAssocMeasures.pmi, num_bigrams)] if num_bigrams else []
    return unigrams + bigrams


def _check_entries(entries: Sequence[str], source: str, allow_punctuation_only: bool) -> list[str]:
    if isinstance(entries, str):
        raise CacheError(f"{source}: expected a list of entries, got a single string {entries!r}")
    entries = list(entries)
    if not entries:
        raise CacheError(f"{source}: no entries")
    bad_type = [e for e in entries if not isinstance(e, str)]
    if bad_type:
        raise CacheError(f"{source}: entries must be strings, got {_preview(bad_type)}")
    blank = [i for i, e in enumerate(entries) if not e.strip()]
    if blank:
        raise CacheError(f"{source}: empty or whitespace-only entries at positions {_preview(blank)}")
    multiline = [e for e in entries if "\n" in e or "\r" in e]
    if multiline:
        raise CacheError(f"{source}: entries cannot contain line breaks: {_preview(multiline)}")
    padded = [e for e in entries if e != e.strip()]
    if padded:
        raise CacheError(f"{source}: entries with leading/trailing whitespace: {_preview(padded)}")
    if not allow_punctuation_only:
        punct = [e for e in entries if not any(ch.isalnum() for ch in e)]
        if punct:
            raise CacheError(f"{source}: entries with only punctuation carry no content: {_preview(punct)}")
    seen, dups = set(), []
    for e in entries:
        if e in seen:
            dups.append(e)
        seen.add(e)
    if dups:
        raise CacheError(f"{source}: duplicate entries {_preview(sorted(set(dups)))}")
    return entries


def _check_embeddings(embeddings, count: int, source: str) -> torch.Tensor:
    if isinstance(embeddings, np.ndarray):
        if not np.issubdtype(embeddings.dtype, np.floating):
            raise CacheError(f"{source}: embeddings must be floating point, got dtype {embeddings.dtype}")
        embeddings = torch.from_numpy(np.ascontiguousarray(embeddings))
    if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
        raise CacheError(f"{source}: embeddings must be a floating-point tensor or array")
    if embeddings.ndim != 2:
        raise CacheError(f"{source}: embeddings must be 2-D [entries, dim], got shape {tuple(embeddings.shape)}")
    if embeddings.shape[0] != count:
        raise CacheError(f"{source}: {count} entries but {embeddings.shape[0]} embedding rows")
    embeddings = embeddings.detach().to(torch.float32)
    bad = (~torch.isfinite(embeddings)).any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise CacheError(f"{source}: NaN or infinite embeddings in rows {_preview(bad)}")
    norms = embeddings.norm(dim=1, keepdim=True)
    zero = (norms.squeeze(1) == 0).nonzero().flatten().tolist()
    if zero:
        raise CacheError(f"{source}: all-zero embeddings (no direction) in rows {_preview(zero)}")
    if (norms - 1).abs().max() > 1e-6:  # leave unit rows bit-identical, so save/load round-trips exactly
        embeddings = embeddings / norms
    return embeddings.contiguous()


def _atomic_save(path: Path, write: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_index(kind: str, dim: int, size: int, nlist: int | None = None, nprobe: int = 16, hnsw_m: int = 32,
              ef_search: int = 128, ef_construction: int = 80, pq_m: int = 64):
    """An empty faiss inner-product index of `kind` for `size` vectors (IVF kinds still need `train_index`).

    'ivf-fastscan-sq8' scans 4-bit PQ codes (`pq_m` / 2 bytes a vector) with faiss's SIMD fast-scan, then
    re-ranks the best `REFINE_FACTOR` x k by one-byte SQ8 codes: the ranking of ivf-sq8 at the same nprobe, for a
    fraction of its scan (README's speed table)."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError("faiss indexes need faiss: pip install faiss-cpu (the 'faiss' extra)") from error
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose from {', '.join(INDEX_KINDS)}")
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind in ("hnsw", "hnsw-sq8"):
        index = (faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT) if kind == "hnsw"
                 else faiss.index_factory(dim, f"HNSW{hnsw_m},SQ8", faiss.METRIC_INNER_PRODUCT))
        index.hnsw.efConstruction, index.hnsw.efSearch = ef_construction, ef_search
        return index
    nlist = nlist or max(1, int(4 * np.sqrt(size)))
    if kind in ("ivf-pq", "ivf-fastscan-sq8") and dim % pq_m:
        raise ValueError(f"{kind}: pq_m={pq_m} sub-quantizers must divide the embedding size {dim}")
    codes = IVF_CODES[kind].format(pq_m=pq_m)
    index = faiss.index_factory(dim, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
    if kind == "ivf-fastscan-sq8":
        index.k_factor = REFINE_FACTOR
    faiss.extract_index_ivf(index).nprobe = nprobe
    return index


def train_sample_size(index) -> int:
    """How many vectors an untrained `new_index` learns from: 64 a list for IVF kinds, else 100k (SQ8 ranges)."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    return 64 * ivf.nlist if ivf is not None else 100_000


def train_index(index, sample: np.ndarray, coarse_iterations: int = 10) -> None:
    """Train an empty `new_index` on a sample of unit vectors [n, D].

    The lists of a large IVF (`TWO_LEVEL_MIN_LISTS` or more) come from faiss's two-level k-means: sqrt(nlist)
    clusters, each split into lists in proportion to its size. One flat k-means over ten thousand lists would
    take hours on a CPU and leaves lists that hold many topics; their centroids are then far from every query, so
    search needs a large nprobe (README's speed table has both at 10M entries)."""
    import faiss

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and ivf.nlist >= TWO_LEVEL_MIN_LISTS and ivf.quantizer.ntotal == 0:
        with contextlib.redirect_stdout(io.StringIO()):  # faiss.contrib prints a note when scipy is absent
            from faiss.contrib.clustering import two_level_clustering
        centroids, _ = two_level_clustering(sample, int(np.sqrt(ivf.nlist)), ivf.nlist, spherical=True,
                                            clustering_niter=coarse_iterations, min_points_per_centroid=1)
        ivf.quantizer.add(centroids / np.linalg.norm(centroids, axis=1, keepdims=True))
    index.train(sample)  # the codes (SQ8 ranges, PQ codebooks); the quantizer is trained once it holds nlist


class AntarcticCache:
    """Cache entries (strings) with unit-norm embeddings [N, D]; top-k by cosine, exact or through faiss.

    `text_encoder` (list of strings -> [n, D] tensor) embeds new entries; `AntarcticRetriever` gives the caches it
    serves one (its CLIP text tower).

    A web-scale cache need not hold its float32 vectors (10M x 512 would be 20 GB): `embeddings=None` with a
    faiss `index` of compressed codes (`build_index("ivf-sq8")`, or `from_index`) searches through the index only.
    With raw vectors, search is exact unless `use_index=True` asks for the index.
    """

    def __init__(
        self,
        entries: Sequence[str],
        embeddings,
        text_encoder: TextEncoder | None = None,
        source: str = "cache",
        allow_punctuation_only: bool = False,
        index=None,
        index_kind: str | None = None,
    ):
        self.entries = _check_entries(entries, source, allow_punctuation_only)
        self.index, self._index_kind = index, index_kind
        if embeddings is None:
            if index is None:
                raise CacheError(f"{source}: a cache needs its embeddings or a faiss index of them")
            if index.ntotal != len(self.entries):
                raise CacheError(f"{source}: {len(self.entries)} entries but the index holds {index.ntotal} vectors")
            self.embeddings = None
        else:
            self.embeddings = _check_embeddings(embeddings, len(self.entries), source)
        self.text_encoder = text_encoder

    @classmethod
    def from_index(cls, entries: Sequence[str], index, kind: str = "index", text_encoder: TextEncoder | None = None,
                   source: str = "index") -> AntarcticCache:
        """A cache whose vectors live in a faiss index only (compressed codes), e.g. one built in chunks."""
        return cls(entries, None, text_encoder, source=source, allow_punctuation_only=True, index=index,
                   index_kind=kind)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"AntarcticCache(entries={len(self)}, dim={self.dim}, index={self._index_kind})"

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1] if self.embeddings is not None else self.index.d

    @staticmethod
    def embed(texts: Sequence[str], text_encoder: TextEncoder, batch_size: int = 256, progress: bool = True) -> torch.Tensor:
        """CLIP text embeddings of `texts` in batches, L2-normalised, on the CPU in float32."""
        chunks = []
        for start in tqdm(range(0, len(texts), batch_size), desc="embedding cache entries", disable=not progress):
            with torch.no_grad():
                chunks.append(text_encoder(list(texts[start : start + batch_size])).detach().float().cpu())
        embeddings = torch.cat(chunks)
        return embeddings / embeddings.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @classmethod
    def from_corpus(
        cls,
        corpus: Iterable[str],
        text_encoder: TextEncoder,
        num_unigrams: int = 25_000,
        num_bigrams: int = 25_000,
        min_bigram_freq: int = 3,
        batch_size: int = 256,
        progress: bool = True,
    ) -> AntarcticCache:
        entries = build_ngram_entries(corpus, num_unigrams, num_bigrams, min_bigram_freq)
        logger.info("built %d cache entries; embedding them", len(entries))
        embeddings = cls.embed(entries, text_encoder, batch_size, progress)
        return cls(entries, embeddings, text_encoder, source="corpus", allow_punctuation_only=True)

    def add(
        self,
        entries: Sequence[str],
        embeddings=None,
        text_encoder: TextEncoder | None = None,
        batch_size: int = 256,
        progress: bool = False,
    ) -> AntarcticCache:
        """Append custom entries (e.g. a person's name), embedding only them; returns self."""
        entries = _check_entries(entries, "cache.add", allow_punctuation_only=False)
        present = set(self.entries)
        clash = [e for e in entries if e in present]
        if clash:
            raise CacheError(f"cache.add: entries already in the cache {_preview(clash)}")
        if embeddings is None:
            encoder = text_encoder or self.text_encoder
            if encoder is None:
                raise CacheError(
                    "cache.add: no text encoder to embed the new entries; pass embeddings= or "
                    "text_encoder=AntarcticRetriever.from_model(model, processor).encode"
                )
            embeddings = self.embed(entries, encoder, batch_size, progress)
        embeddings = _check_embeddings(embeddings, len(entries), "cache.add")
        if embeddings.shape[1] != self.dim:
            raise CacheError(f"cache.add: embeddings have dim {embeddings.shape[1]}, the cache has {self.dim}")
        self.entries.extend(entries)
        if self.embeddings is not None:
            self.embeddings = torch.cat([self.embeddings, embeddings.to(self.embeddings.device)])
        if self.index is not None:
            self.index.add(embeddings.cpu().numpy())
        return self

    def copy(self) -> AntarcticCache:
        """An independent cache (same entries and vectors; an index-only cache gets a copy of its index) to
        extend without touching this one."""
        if self.embeddings is None:
            import faiss

            return AntarcticCache.from_index(list(self.entries), faiss.clone_index(self.index), self._index_kind,
                                             self.text_encoder)
        return AntarcticCache(list(self.entries), self.embeddings.clone(), self.text_encoder,
                              allow_punctuation_only=True)

    def to(self, device) -> AntarcticCache:
        if self.embeddings is not None:
            self.embeddings = self.embeddings.to(device)
        return self

    # ---- search -----------------------------------------------------------------------------------------
    def search(
        self, query_embeds: torch.Tensor, k: int, max_block_elements: int = 1 << 25, use_index: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k entries per query by cosine, descending: (scores [B, k], indices [B, k]).

        `use_index`: True searches the faiss index, False the raw vectors; None (default) is exact search
        unless the cache has no raw vectors.

        Exact search walks the entries in blocks and merges a running top-k, so memory stays at
        B x block (at most `max_block_elements` floats) however large the cache is.
        """
        if query_embeds.ndim != 2 or query_embeds.shape[1] != self.dim:
            raise CacheError(f"search: queries must be [B, {self.dim}], got shape {tuple(query_embeds.shape)}")
        if not 1 <= k <= len(self):
            raise CacheError(f"search: k={k} must be between 1 and the cache size {len(self)}")
        queries = query_embeds.detach().float()
        queries = queries / queries.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if use_index or self.embeddings is None:
            if use_index is False:
                raise CacheError("search: use_index=False, but this cache keeps its vectors in its index only")
            return self._search_index(queries, k)
        if self.embeddings.device != queries.device:
            self.embeddings = self.embeddings.to(queries.device)
        batch = queries.shape[0]
        block = max(k, max_block_elements // max(batch, 1))
        best_scores = queries.new_empty(batch, 0)
        best_ids = torch.empty(batch, 0, dtype=torch.long, device=queries.device)
        for start in range(0, len(self), block):
            scores = queries @ self.embeddings[start : start + block].T
            top_scores, top_ids = scores.topk(min(k, scores.shape[1]), dim=1)
            best_scores = torch.cat([best_scores, top_scores], dim=1)
            best_ids = torch.cat([best_ids, top_ids + start], dim=1)
            if best_scores.shape[1] > k:
                best_scores, order = best_scores.topk(k, dim=1)
                best_ids = best_ids.gather(1, order)
        order = best_scores.argsort(dim=1, descending=True, stable=True)
        return best_scores.gather(1, order), best_ids.gather(1, order)

    def build_index(self, kind: str = "hnsw", nlist: int | None = None, nprobe: int = 16, hnsw_m: int = 32,
                    ef_search: int = 128, ef_construction: int = 80, pq_m: int = 64,
                    keep_embeddings: bool = True) -> AntarcticCache:
        """Approximate inner-product index (faiss, `pip install faiss-cpu`) over the raw vectors: 'flat' (exact),
        'ivf', 'hnsw', or the compressed 'ivf-sq8' (one byte a dimension), 'ivf-pq' (`pq_m` bytes a vector),
        'hnsw-sq8' (an HNSW graph over one-byte codes) and 'ivf-fastscan-sq8' (4-bit fast-scan codes re-ranked by
        one-byte codes; see `new_index`); README's speed table has what each reached on this machine.
        `keep_embeddings=False` then drops the raw vectors, so the index alone holds the cache."""
        data = self.embeddings.cpu().numpy()
        index = new_index(kind, self.dim, len(self), nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m, ef_search=ef_search,
                          ef_construction=ef_construction, pq_m=pq_m)
        if not index.is_trained:  # IVF lists (64 vectors a list) or SQ8 ranges (a sample of 100k)
            rng = np.random.default_rng(0)
            size = min(len(data), train_sample_size(index))
            train_index(index, data[rng.choice(len(data), size=size, replace=False)])
        index.add(data)
        self.index, self._index_kind = index, kind
        if not keep_embeddings:
            self.embeddings = None
        return self

    def _search_index(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.index is None:
            raise CacheError("search: use_index=True but no index was built (call build_index first)")
        scores, ids = self.index.search(queries.cpu().numpy(), k)
        return torch.from_numpy(scores).to(queries.device), torch.from_numpy(ids).long().to(queries.device)

    # ---- tables ----------------------------------------------------------------------------------------
    def lookup(self, indices: torch.Tensor) -> list[list[str]]:
        return [[self.entries[i] for i in row] for row in indices.tolist()]

    # ---- files -----------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """`entries.txt`, `cache.safetensors` (the raw vectors, if the cache has them) and `cache.faiss` (the
        index, if one was built, its kind in the file's name table), each written to a temporary file and renamed."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        text = "".join(entry + "\n" for entry in self.entries)
        _atomic_save(folder / ENTRIES_NAME, lambda p: Path(p).write_text(text, encoding="utf-8"))
        meta = {"num_entries": str(len(self)), "dim": str(self.dim), "index_kind": self._index_kind or ""}
        if self.embeddings is not None:
            tensors = {"embeddings": self.embeddings.detach().cpu().contiguous()}
        else:
            tensors = {"index_only": torch.zeros(0)}  # the metadata still says what the folder holds
        _atomic_save(folder / EMBEDDINGS_NAME, lambda p: save_file(tensors, p, metadata=meta))
        if self.index is not None:
            import faiss

            _atomic_save(folder / INDEX_NAME, lambda p: faiss.write_index(self.index, p))
        elif (folder / INDEX_NAME).exists():
            (folder / INDEX_NAME).unlink()  # a stale index of other entries must not be loaded with these

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, text_encoder: TextEncoder | None = None, load_index: bool = True,
                        mmap_index: bool = False, **hub_kwargs) -> AntarcticCache:
        """Load `entries.txt` + `cache.safetensors` (+ `cache.faiss` when saved and `load_index`) from a local
        folder or a Hub repo; `mmap_index` maps a large index from disk instead of reading it into memory."""
        from safetensors import safe_open
        from transformers.utils import cached_file

        entries_file = cached_file(str(path), ENTRIES_NAME, **hub_kwargs)
        embeddings_file = cached_file(str(path), EMBEDDINGS_NAME, **hub_kwargs)
        entries = _read_lines(entries_file)
        with safe_open(embeddings_file, framework="pt") as handle:
            kind = (handle.metadata() or {}).get("index_kind") or None
            embeddings = handle.get_tensor("embeddings") if "embeddings" in handle.keys() else None
        index = None
        if load_index or embeddings is None:
            index_file = cached_file(str(path), INDEX_NAME, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
            if index_file is not None:
                import faiss

                index = faiss.read_index(index_file, faiss.IO_FLAG_MMAP if mmap_index else 0)
            elif embeddings is None:
                raise CacheError(f"{path}: an index-only cache without its {INDEX_NAME}")
        return cls(entries, embeddings, text_encoder, source=str(path), allow_punctuation_only=True, index=index,
                   index_kind=kind if index is not None else None)

    @classmethod
    def from_original(cls, txt_path: str | os.PathLike, npy_path: str | os.PathLike,
                      text_encoder: TextEncoder | None = None) -> AntarcticCache:
        """Import the release format: one entry a line in `.txt`, float32 [N, D] in `.npy` (no pickles)."""
        entries = _read_lines(txt_path)
        try:
            embeddings = np.load(npy_path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise CacheError(f"{npy_path}: not a readable .npy array ({error})") from error
        source = f"{txt_path} + {npy_path}"
        if embeddings.ndim != 2:
            raise CacheError(f"{source}: embeddings must be 2-D [entries, dim], got shape {embeddings.shape}")
        return cls(entries, embeddings, text_encoder, source=source, allow_punctuation_only=True)


def _read_lines(path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CacheError(f"{path}: cannot read cache entries ({error})") from error
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


class AntarcticRetriever:
    """What turns image embeddings into BART's inputs and scores BART's candidates, as `RagRetriever` does for RAG.

    It owns the n-gram cache, CLIP's text tower (shared with the model, not copied) and the processor's two
    tokenizers (BART's for tables, CLIP's for entries and candidates). The model stays BART plus the CLIP
    towers and never sees a tokenizer; the pipeline runs retrieve -> generate -> score.
    """

    def __init__(self, cache: AntarcticCache | None, clip, processor, top_k: int = 10):
        self.clip = clip
        self.processor = processor
        self.top_k = top_k
        self.clip_max_length = clip.config.text_config.max_position_embeddings
        self.cache = None
        if cache is not None:
            self.set_cache(cache)

    @classmethod
    def from_model(cls, model, processor, cache: AntarcticCache | None = None) -> AntarcticRetriever:
        """The model's own cache (the one saved in its folder) unless `cache` is given."""
        return cls(cache if cache is not None else model.cache, model.clip, processor, top_k=model.config.table_top_k)

    def set_cache(self, cache: AntarcticCache) -> None:
        # by shape, not class: remote code may load this file twice (beside the model and beside the pipeline)
        if not all(hasattr(cache, name) for name in ("search", "lookup", "dim", "entries")):
            raise TypeError(f"set_cache: expected an AntarcticCache, got {type(cache).__name__}")
        if cache.dim != self.clip.config.projection_dim:
            raise CacheError(f"set_cache: cache dim {cache.dim} != CLIP projection dim {self.clip.config.projection_dim}")
        if cache.text_encoder is None:
            cache.text_encoder = self.encode
        self.cache = cache

    def with_cache(self, cache: AntarcticCache) -> AntarcticRetriever:
        """The same towers and tokenizers over another cache (e.g. one with a session's custom entries)."""
        return type(self)(cache, self.clip, self.processor, top_k=self.top_k)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        """Unit-norm CLIP text embeddings [n, D] (float32), for cache entries and for candidates."""
        device, texts = self.clip.device, list(texts)
        if not texts:
            return torch.zeros(0, self.clip.config.projection_dim, device=device)
        chunks = []
        for start in range(0, len(texts), batch_size):  # tokenized a batch at a time: memory flat in len(texts)
            tokens = self.processor.clip_tokenize(texts[start : start + batch_size], max_length=self.clip_max_length)
            features = self.clip.get_text_features(input_ids=tokens["input_ids"].to(device),
                                                   attention_mask=tokens["attention_mask"].to(device)).pooler_output
            chunks.append(torch.nn.functional.normalize(features.float(), dim=-1))
        return torch.cat(chunks)

    @torch.no_grad()
    def retrieve(self, image_embeds: torch.Tensor, top_k: int | None = None, use_index: bool | None = None):
        """Top-k entries per image by cosine, descending: (entries [B][k], linearized tables [B], scores [B, k]).
        `use_index`: the cache's faiss index (True), its raw vectors (False), or its default (None)."""
        if self.cache is None:
            raise CacheError("retrieve: no n-gram cache; load one with set_cache(AntarcticCache...)")
        scores, indices = self.cache.search(image_embeds, top_k or self.top_k, use_index=use_index)
        entries = self.cache.lookup(indices)
        return entries, [self.processor.linearize(row) for row in entries], scores

    def generator_inputs(self, tables: Sequence[str]):
        """BART's `input_ids` / `attention_mask` for linearized tables."""
        return self.processor(tables=list(tables))

    def __call__(self, image_embeds: torch.Tensor, top_k: int | None = None):
        """Image embeddings -> BART's inputs for their top-k tables."""
        return self.generator_inputs(self.retrieve(image_embeds, top_k)[1])

    @torch.no_grad()
    def score(self, image_embeds: torch.Tensor, candidates: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        """CLIP cosine between each image and its candidates: B images, B*n candidates -> [B, n]."""
        features = self.encode(candidates, batch_size=batch_size)
        features = features.view(image_embeds.shape[0], -1, features.shape[-1])
        return torch.einsum("bnd,bd->bn", features, image_embeds.to(features))
