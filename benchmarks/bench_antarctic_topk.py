"""Top-k over a large antarctic cache: exact chunked search vs the machine's sgemm peak, and faiss recall/latency.

Exact search is one [B, D] x [D, N] product plus a running top-k, so its ceiling is the sgemm peak measured
here in the same run. Embeddings are clustered (a mixture of unit-norm centres plus noise), closer to CLIP
text embeddings than isotropic noise, which flatters no index.

    python benchmarks/bench_antarctic_topk.py --entries 1000000 --dim 512 --queries 1024
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hf_captioners.antarctic import AntarcticCache


def clustered(n: int, d: int, centres: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mu = torch.nn.functional.normalize(torch.randn(centres, d, generator=g), dim=1)
    out = torch.empty(n, d)
    for start in range(0, n, 131072):
        stop = min(n, start + 131072)
        ids = torch.randint(0, centres, (stop - start,), generator=g)
        out[start:stop] = mu[ids] + 1.0 * torch.randn(stop - start, d, generator=g) / d**0.5
    return torch.nn.functional.normalize(out, dim=1)


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def sgemm_peak(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_time(lambda: a @ b, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--hnsw-entries", type=int, default=50_000, help="HNSW build is slow on few cores")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"threads={torch.get_num_threads()} entries={args.entries} dim={args.dim} queries={args.queries}")

    peak = sgemm_peak(4096, args.repeats)
    print(f"sgemm peak (4096^3): {peak / 1e9:.1f} GFLOP/s")

    cache = AntarcticCache.__new__(AntarcticCache)  # skip per-entry string checks for synthetic entries
    cache.entries = [str(i) for i in range(args.entries)]
    cache.embeddings = clustered(args.entries, args.dim, 4096, seed=1)
    cache.index, cache._index_kind, cache.text_encoder = None, None, None
    queries = clustered(args.queries, args.dim, 4096, seed=1)  # same centres: queries near real entries
    flops = 2 * args.queries * args.entries * args.dim

    t_exact = best_time(lambda: cache.search(queries, args.k, use_index=False), args.repeats)
    exact_ids = cache.search(queries, args.k, use_index=False)[1].numpy()
    t_gemm = best_time(lambda: queries @ cache.embeddings.T[:, :32768], args.repeats) * args.entries / 32768
    print(f"exact chunked top-{args.k}: {t_exact:.2f} s for {args.queries} queries = "
          f"{args.queries / t_exact:.0f} queries/s, {flops / t_exact / 1e9:.1f} GFLOP/s = "
          f"{flops / t_exact / peak:.2f} of sgemm peak (same-shape gemm alone: {flops / t_gemm / peak:.2f})")

    try:
        import faiss
    except ImportError:
        print("faiss not installed: skipping approximate search")
        return
    faiss.omp_set_num_threads(torch.get_num_threads())

    def recall(ids):
        return float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, exact_ids)]))

    start = time.perf_counter()
    cache.build_index("ivf", nlist=args.nlist)
    print(f"faiss IVF{args.nlist},Flat build: {time.perf_counter() - start:.1f} s")
    for nprobe in (1, 4, 16):
        cache.index.nprobe = nprobe
        t = best_time(lambda: cache.search(queries, args.k), 1)
        ids = cache.search(queries, args.k)[1].numpy()
        print(f"  nprobe={nprobe:3d}: recall@{args.k}={recall(ids):.3f}  {t / args.queries * 1e3:.3f} ms/query "
              f"({t_exact / t:.1f}x exact)")

    sub = AntarcticCache.__new__(AntarcticCache)
    sub.entries, sub.embeddings = cache.entries[: args.hnsw_entries], cache.embeddings[: args.hnsw_entries]
    sub.index, sub._index_kind, sub.text_encoder = None, None, None
    sub_exact = sub.search(queries, args.k, use_index=False)
    t_sub = best_time(lambda: sub.search(queries, args.k, use_index=False), 1)
    exact_ids = sub_exact[1].numpy()
    start = time.perf_counter()
    sub.build_index("hnsw", hnsw_m=16, ef_construction=40)
    print(f"faiss HNSW16 on the first {args.hnsw_entries} entries, build {time.perf_counter() - start:.1f} s "
          f"(exact on that subset: {t_sub / args.queries * 1e3:.3f} ms/query)")
    for ef in (16, 64, 256):
        sub.index.hnsw.efSearch = ef
        t = best_time(lambda: sub.search(queries, args.k), 1)
        ids = sub.search(queries, args.k)[1].numpy()
        print(f"  efSearch={ef:3d}: recall@{args.k}={recall(ids):.3f}  {t / args.queries * 1e3:.3f} ms/query")


if __name__ == "__main__":
    main()
