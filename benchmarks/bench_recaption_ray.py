"""Ray engine overhead vs the local engine: the same shards, the same tiny real Altogether, the same total CPUs.

    python benchmarks/bench_recaption_ray.py [--shards 8] [--images-per-shard 64] [--cpus 2]

On a shared machine run it in a network namespace of its own, so the local Ray cluster stays on loopback:
    ip netns add bench && ip netns exec bench ip link set lo up
    RAY_USAGE_STATS_ENABLED=0 ip netns exec bench .venv/bin/python benchmarks/bench_recaption_ray.py
    ip netns delete bench

Local: load the captioner, then `caption_shards` (generation on `--cpus` threads, one DataLoader worker decoding).
Ray: start a local cluster of `--cpus` CPUs, then `caption_shards_ray` with `--cpus` one-CPU actors, each loading
the captioner and decoding + generating its own shards. Both times include loading the model; Ray's also includes
starting the cluster and its actors, which is reported on its own (it is paid once per run, however many shards).
Target: Ray at most 15% slower on CPU. CPU only: no GPU throughput is measured here.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_recaption import build_model  # noqa: E402


def run_local(model_dir: Path, shards: list[str], out: Path, cpus: int, batch_size: int) -> tuple[float, float, int]:
    from hf_captioners.captioners import load_captioner
    from hf_captioners.recaption import caption_shards

    torch.set_num_threads(cpus)
    start = time.perf_counter()
    captioner = load_captioner(str(model_dir))
    load_s = time.perf_counter() - start
    summary = caption_shards(captioner, shards, out, batch_size=batch_size, num_workers=1, progress=False)
    return time.perf_counter() - start, load_s, summary.captioned


def run_ray(model_dir: Path, shards: list[str], out: Path, cpus: int, batch_size: int):
    import ray

    from hf_captioners.recaption_ray import LoadCaptioner, caption_shards_ray, start_ray

    temp_dir = tempfile.mkdtemp(prefix="rayb", dir="/tmp")  # short: unix socket paths are limited
    try:
        start = time.perf_counter()
        start_ray(num_cpus=cpus, temp_dir=temp_dir, log_to_driver=False)
        cluster_s = time.perf_counter() - start
        summary = caption_shards_ray(LoadCaptioner(str(model_dir)), shards, out, num_workers=cpus,
                                     num_cpus_per_worker=1, batch_size=batch_size, progress=False)
        total = time.perf_counter() - start
        ray.shutdown()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return total, cluster_s, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--images-per-shard", type=int, default=64)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()

    from hf_captioners.toyworld import generate_toyworld

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = args.shards * args.images_per_shard
        generate_toyworld(root / "tw", splits={"train": n}, formats=("shards",), shard_size=args.images_per_shard,
                          progress=False)
        shards = sorted(str(p) for p in (root / "tw" / "shards").glob("train-*.tar"))
        model_dir = build_model(root / "model", args.hidden, args.layers)

        local_s, local_load_s, local_n = run_local(model_dir, shards, root / "local", args.cpus, args.batch_size)
        ray_s, cluster_s, summary = run_ray(model_dir, shards, root / "ray", args.cpus, args.batch_size)
        assert local_n == summary.captioned == n, (local_n, summary.captioned, n)
        same = all(filecmp.cmp(root / "local" / Path(s).with_suffix(".json").name,
                               root / "ray" / Path(s).with_suffix(".json").name, shallow=False) for s in shards)
        startup_s = cluster_s + summary.startup_seconds
        steady_s = ray_s - startup_s

    ratio = ray_s / local_s
    steady_ratio = steady_s / (local_s - local_load_s)
    result = {
        "images": n, "shards": args.shards, "cpus": args.cpus,
        "lm": {"hidden": args.hidden, "layers": args.layers, "new_tokens": 24},
        "local_seconds": round(local_s, 2),
        "local_model_load_seconds": round(local_load_s, 2),
        "ray_seconds": round(ray_s, 2),
        "ray_cluster_and_first_actor_seconds": round(startup_s, 2),
        "ray_after_first_actor_seconds": round(steady_s, 2),
        "ray_over_local": round(ratio, 3),
        "ray_over_local_after_startup": round(steady_ratio, 3),
        "retries": summary.retries,
        "byte_identical_json": same,
    }
    print(json.dumps(result, indent=1))
    verdict = "met" if ratio <= 1.15 else "NOT met"
    print(f"bench_recaption_ray: ray {ray_s:.1f}s vs local {local_s:.1f}s for {n} images on {args.cpus} CPUs -> "
          f"x{ratio:.2f} (target <= x1.15: {verdict}); of ray's time {startup_s:.1f}s is cluster + first actor "
          f"start; after it x{steady_ratio:.2f} of local's captioning time; {summary.retries} retries; "
          f"json byte-identical: {same}")


if __name__ == "__main__":
    main()
