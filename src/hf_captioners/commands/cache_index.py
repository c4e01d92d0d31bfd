"""`hf-captioners cache-index FOLDER`: build a faiss index over a saved antarctic folder's n-gram cache and save it
beside the cache (`cache.faiss`), so the model loads it with the folder; search through it with
`caption-shards --cache-search index`, `evaluate --cache-search index` or `pipe(..., use_index=True)`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hf_captioners.errors import OperatorError

# antarctic's INDEX_KINDS, written out so that `--help` does not import the model (tests/test_antarctic_model.py checks)
KINDS = ("flat", "ivf", "hnsw", "ivf-sq8", "ivf-pq", "hnsw-sq8", "ivf-fastscan-sq8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a saved antarctic folder (or a cache folder: entries.txt + cache.safetensors)")
    parser.add_argument("--kind", default="ivf-sq8", choices=KINDS,
                        help="ivf-sq8 / ivf-pq / hnsw-sq8 / ivf-fastscan-sq8 store compressed codes (1 byte a dimension "
                             "/ --pq-m bytes a vector / 1 byte a dimension under an HNSW graph / --pq-m half-bytes a "
                             "vector scanned with SIMD, re-ranked by 1 byte a dimension: the fastest at 10M entries)")
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default 4 x sqrt(entries))")
    parser.add_argument("--nprobe", type=int, default=16, help="IVF lists searched per query (saved with the index)")
    parser.add_argument("--pq-m", type=int, default=64)
    parser.add_argument("--index-only", action="store_true",
                        help="drop the raw float32 vectors: the index alone holds the cache (web-scale caches)")


def run(args: argparse.Namespace) -> int:
    from hf_captioners.antarctic import AntarcticCache, CacheError

    folder = Path(args.folder)
    if not (folder / "entries.txt").is_file():
        raise OperatorError(f"{folder}: no entries.txt, not an antarctic folder or cache folder")
    try:
        cache = AntarcticCache.from_pretrained(folder, load_index=False)
    except CacheError as error:
        raise OperatorError(str(error)) from error
    if cache.embeddings is None:
        raise OperatorError(f"{folder}: the cache keeps its vectors in an index only; build indexes from raw vectors")
    try:
        import faiss  # noqa: F401
    except ImportError:
        raise OperatorError("cache-index needs faiss: pip install 'hf-captioners[faiss]'") from None
    start = time.perf_counter()
    try:
        cache.build_index(args.kind, nlist=args.nlist, nprobe=args.nprobe, pq_m=args.pq_m,
                          keep_embeddings=not args.index_only)
    except ValueError as error:
        raise OperatorError(f"cache-index: {error}") from None
    cache.save_pretrained(folder)
    size = (folder / "cache.faiss").stat().st_size / 2**20
    print(f"cache-index: {args.kind} over {len(cache):,} entries in {time.perf_counter() - start:.1f}s; "
          f"{folder / 'cache.faiss'} ({size:.1f} MiB){'; raw vectors dropped' if args.index_only else ''}")
    return 0
