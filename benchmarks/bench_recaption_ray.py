"""Ray engine overhead vs the local engine: the same shards, the same tiny real Altogether, the same total CPUs.

    python benchmarks/bench_recaption_ray.py [--shards 8] [--images-per-shard 64] [--cpus 2]

On a shared machine run it in a network namespace of its own, so the local Ray cluster stays on loopback:
    ip netns add bench && ip netns exec bench ip link set lo up
    RAY_USAGE_STATS_ENABLED=0 ip netns exec bench .venv/bin/python benchmarks/bench_recaption_ray.py
    ip netns delete bench

Each engine runs in a fresh Python process, timed from its start to its exit, as an operator's run would be:
- local: import torch/transformers, load the captioner, `caption_shards` (generation on `--cpus` threads, one
  DataLoader worker decoding);
- ray: import ray, start a local cluster of `--cpus` CPUs, `caption_shards_ray` with `--cpus` one-CPU actors
  (each imports torch/transformers, loads the captioner, decodes and generates its own shards), shut Ray down.
So both sides pay their imports and model loading; Ray also pays its cluster and actor start, reported on its
own (paid once per run, however many shards), and its captioning time after the first actor is up is compared
with the local engine's after its model is loaded. The CPU time of processes outside the benchmark (others on a
shared machine) is sampled during each run and reported, since it skews the comparison (the local engine's
multi-threaded generation suffers far more from a busy core than one-thread actors do).
Target: Ray at most 15% slower on CPU, end to end. CPU only: no GPU throughput is measured here.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def child_local(model: str, shards: list[str], out: str, cpus: int, batch_size: int) -> dict:
    start = time.perf_counter()
    import torch

    from hf_captioners.recaption.adapters import load_captioner
    from hf_captioners.recaption.engine import caption_shards

    torch.set_num_threads(cpus)
    captioner = load_captioner(model)
    loaded = time.perf_counter()
    summary = caption_shards(captioner, shards, out, batch_size=batch_size, num_workers=1, progress=False)
    end = time.perf_counter()
    return {"import_and_load_seconds": loaded - start, "caption_seconds": end - loaded, "captioned": summary.captioned}


def child_ray(model: str, shards: list[str], out: str, cpus: int, batch_size: int) -> dict:
    start = time.perf_counter()
    import ray

    from hf_captioners.recaption.ray_engine import LoadCaptioner, caption_shards_ray, start_ray

    temp_dir = tempfile.mkdtemp(prefix="rayb", dir="/tmp")  # short: unix socket paths are limited
    try:
        start_ray(num_cpus=cpus, temp_dir=temp_dir, log_to_driver=False)
        up = time.perf_counter()
        summary = caption_shards_ray(LoadCaptioner(model), shards, out, num_workers=cpus, num_cpus_per_worker=1,
                                     batch_size=batch_size, progress=False)
        done = time.perf_counter()
        ray.shutdown()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    first_actor = up + summary.startup_seconds
    return {"import_and_cluster_seconds": up - start, "first_actor_up_seconds": first_actor - start,
            "caption_seconds": done - first_actor, "shutdown_seconds": time.perf_counter() - done,
            "captioned": summary.captioned, "workers": summary.workers, "retries": summary.retries,
            "shards_lost": summary.shards_lost}


class OthersCpu:
    """Samples /proc: CPU seconds used by processes that are not this one or its descendants."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.seconds, self._stop = interval, 0.0, threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")
        self._last = self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _sample() -> dict[int, tuple[int, int]]:
        found = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as handle:
                        fields = handle.read().rpartition(")")[2].split()
                except OSError:
                    continue
                found[int(name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = self._sample()
            ours, me = set(), os.getpid()
            for pid in now:
                chain, walk = [], pid
                while walk in now and walk not in ours and walk != me and len(chain) < 64:
                    chain.append(walk)
                    walk = now[walk][0]
                if walk == me or walk in ours:
                    ours.update(chain)
            self.seconds += sum(ticks - self._last.get(pid, (0, 0))[1] for pid, (_, ticks) in now.items()
                                if pid not in ours and pid != me) / self._tick
            self._last = now

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.seconds


def run_child(engine: str, model: Path, shards: list[str], out: Path, cpus: int, batch_size: int):
    command = [sys.executable, __file__, "--child", engine, "--model", str(model), "--out", str(out), "--cpus",
               str(cpus), "--batch-size", str(batch_size), *shards]
    others = OthersCpu()
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    others_s = others.stop()
    if result.returncode != 0:
        raise RuntimeError(f"the {engine} run failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return wall, json.loads(result.stdout.strip().splitlines()[-1]), others_s / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--images-per-shard", type=int, default=64)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--child", choices=("local", "ray"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("child_shards", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = child_local if args.child == "local" else child_ray
        print(json.dumps(run(args.model, args.child_shards, args.out, args.cpus, args.batch_size)))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_recaption import build_model

    from hf_captioners.toyworld import generate_toyworld

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = args.shards * args.images_per_shard
        generate_toyworld(root / "tw", splits={"train": n}, formats=("shards",), shard_size=args.images_per_shard,
                          progress=False)
        shards = sorted(str(p) for p in (root / "tw" / "shards").glob("train-*.tar"))
        model_dir = build_model(root / "model", args.hidden, args.layers)

        local_s, local, local_others = run_child("local", model_dir, shards, root / "local", args.cpus, args.batch_size)
        ray_s, ray, ray_others = run_child("ray", model_dir, shards, root / "ray", args.cpus, args.batch_size)
        assert local["captioned"] == ray["captioned"] == n, (local["captioned"], ray["captioned"], n)
        same = all(filecmp.cmp(root / "local" / Path(s).with_suffix(".json").name,
                               root / "ray" / Path(s).with_suffix(".json").name, shallow=False) for s in shards)

    ratio = ray_s / local_s
    steady_ratio = ray["caption_seconds"] / local["caption_seconds"]
    result = {
        "images": n, "shards": args.shards, "cpus": args.cpus,
        "lm": {"hidden": args.hidden, "layers": args.layers, "new_tokens": 24},
        "local_seconds": round(local_s, 2),
        "local_import_and_model_load_seconds": round(local["import_and_load_seconds"], 2),
        "local_caption_seconds": round(local["caption_seconds"], 2),
        "ray_seconds": round(ray_s, 2),
        "ray_import_and_cluster_seconds": round(ray["import_and_cluster_seconds"], 2),
        "ray_until_first_actor_up_seconds": round(ray["first_actor_up_seconds"], 2),
        "ray_caption_seconds_after_first_actor": round(ray["caption_seconds"], 2),
        "ray_shutdown_seconds": round(ray["shutdown_seconds"], 2),
        "ray_over_local": round(ratio, 3),
        "ray_over_local_after_startup": round(steady_ratio, 3),
        "ray_workers": ray["workers"],
        "retries": ray["retries"],
        "shards_lost": ray["shards_lost"],
        "other_processes_cores_busy": {"local": round(local_others, 2), "ray": round(ray_others, 2)},
        "byte_identical_json": same,
    }
    print(json.dumps(result, indent=1))
    busy = max(local_others, ray_others)
    shared = busy > 0.1 * args.cpus
    verdict = "not judged, the machine was shared" if shared else "met" if ratio <= 1.15 else "NOT met"
    caveat = (f"; CAUTION: other processes kept {busy:.1f} of the {args.cpus} cores busy, which skews the figures "
              f"(rerun on an idle machine)" if shared else "")
    print(f"bench_recaption_ray: ray {ray_s:.1f}s vs local {local_s:.1f}s for {n} images on {args.cpus} CPUs, each a "
          f"fresh process -> x{ratio:.2f} (target <= x1.15: {verdict}); ray's first actor was up after "
          f"{ray['first_actor_up_seconds']:.1f}s (local had its model after {local['import_and_load_seconds']:.1f}s); "
          f"captioning after that x{steady_ratio:.2f} of local's; {ray['retries']} retries, {ray['shards_lost']} "
          f"shards lost; json byte-identical: {same}{caveat}")


if __name__ == "__main__":
    main()
