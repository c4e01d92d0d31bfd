"""`hf-captioners caption-shards MODEL SHARDS... --out OUT`: re-caption webdataset shards, resumably.

Run under `accelerate launch` (or torchrun) for several processes / GPUs: each rank takes its own shards.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="saved captioner folder or Hub id (loaded with trust_remote_code)")
    parser.add_argument("shards", nargs="+", help="shard paths, globs, brace patterns, or @file listing them")
    parser.add_argument("--out", required=True, help="output folder: {shard}.json (+ sidecars) per shard")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader processes decoding images")
    parser.add_argument("--extra-formats", default="", help="comma list of jsonl,parquet kept beside the json")
    parser.add_argument("--dtype", default=None, help="float32 | float16 | bfloat16 | auto")
    parser.add_argument("--device-map", default=None, help="e.g. auto (default: this rank's device)")
    parser.add_argument("--max-pixels", type=int, default=89_478_485, help="larger images are skipped as bombs")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--num-beams", type=int, default=None)
    parser.add_argument("--do-sample", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--top-k", type=int, default=None, help="antarctic: table entries per image")
    parser.add_argument("--num-candidates", type=int, default=None, help="antarctic: candidates re-ranked by CLIP")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even where a GPU is present")
    parser.add_argument("--no-progress", action="store_true")


def generate_kwargs_from(args: argparse.Namespace) -> dict:
    names = ("max_new_tokens", "num_beams", "do_sample", "temperature", "top_p")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def run(args: argparse.Namespace) -> int:
    import torch
    from accelerate import PartialState

    from .captioners import load_captioner
    from .io_utils import atomic_write_json
    from .recaption import caption_shards, expand_shard_specs

    # Without a GPU, `accelerate launch --multi_gpu` processes only form a group when CPU is asked for explicitly.
    state = PartialState(cpu=args.cpu or not torch.cuda.is_available())
    formats = tuple(f for f in args.extra_formats.split(",") if f)
    if set(formats) - {"jsonl", "parquet"}:
        raise SystemExit(f"--extra-formats: choose from jsonl,parquet, got {args.extra_formats!r}")
    shards = expand_shard_specs(args.shards)
    captioner = load_captioner(
        args.model,
        device=None if args.device_map else state.device,
        dtype=args.dtype,
        device_map=args.device_map,
        generate_kwargs=generate_kwargs_from(args),
        top_k=args.top_k,
        num_candidates=args.num_candidates,
    )
    summary = caption_shards(
        captioner, shards, args.out, batch_size=args.batch_size, num_workers=args.num_workers,
        rank=state.process_index, world_size=state.num_processes, extra_formats=formats,
        max_pixels=args.max_pixels, progress=not args.no_progress and state.is_local_main_process,
    )
    atomic_write_json(f"{args.out}/_summary.rank{state.process_index}.json", vars(summary) | {"images_per_second": summary.images_per_second})
    state.wait_for_everyone()
    if state.num_processes > 1 and state.is_main_process:
        totals = [json.load(open(f"{args.out}/_summary.rank{r}.json")) for r in range(state.num_processes)]
        keys = ("shards_done", "shards_skipped", "shards_failed", "records", "captioned", "errors")
        for key in keys:
            setattr(summary, key, sum(t[key] for t in totals))
        summary.seconds = max(t["seconds"] for t in totals)
    if state.is_main_process:
        print(summary.line() + (f" ({state.num_processes} processes)" if state.num_processes > 1 else ""))
    return 0
