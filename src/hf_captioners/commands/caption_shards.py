"""`hf-captioners caption-shards MODEL SHARDS... --out OUT`: re-caption webdataset shards, resumably.

Run under `accelerate launch` (or torchrun) for several processes / GPUs: each rank takes its own shards.
`--engine ray` instead hands shards out one at a time to a pool of Ray actors (a local cluster, or the one at
`--ray-address`), so stragglers hold up no one and a shard whose worker died is handed out again.
Exit status: 0 when every shard is finished, 1 when some shard could not be read to its end (it is kept as
`{shard}.partial.json` and retried by the next run), 2 for a mistake in the command (one line on stderr;
the traceback with `--log-level DEBUG`).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

from hf_captioners.commands import DTYPES, add_cache_search, use_index
from hf_captioners.errors import OperatorError

logger = logging.getLogger(__name__)

# `org/name` or `name`: anything else that is not on disk can only have been meant as a folder
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _bounded(kind, low, strict: bool, what: str):
    """An argparse type: `kind(text)`, refused below (or at, when `strict`) `low`."""

    def parse(text: str):
        value = kind(text)
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


_positive_int = _bounded(int, 1, False, "at least 1")
_non_negative_int = _bounded(int, 0, False, "0 or more")
_positive_float = _bounded(float, 0, True, "more than 0")
_non_negative_float = _bounded(float, 0, False, "0 or more")


RAY_OPTIONS = ("ray_address", "ray_workers", "ray_cpus_per_worker", "ray_gpus_per_worker", "ray_max_retries",
               "ray_temp_dir")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="saved captioner folder or Hub id (loaded with trust_remote_code)")
    parser.add_argument("shards", nargs="+", help="shard paths, globs, brace patterns, or @file listing them")
    parser.add_argument("--out", required=True, help="output folder: {shard}.json (+ sidecars) per shard")
    parser.add_argument("--batch-size", type=_positive_int, default=32)
    parser.add_argument("--num-workers", type=_non_negative_int, default=2, help="DataLoader processes decoding images")
    parser.add_argument("--extra-formats", default="", help="comma list of jsonl,parquet kept beside the json")
    parser.add_argument("--accept-partial", action="store_true",
                        help="take shards that cannot be read to their end (truncated, corrupt) as finished with "
                             "their readable records, instead of keeping them as .partial.json to retry")
    parser.add_argument("--dtype", default=None, choices=DTYPES)
    parser.add_argument("--device-map", default=None, help="e.g. auto (default: this rank's device)")
    parser.add_argument("--max-pixels", type=_positive_int, default=89_478_485, help="larger images are skipped as bombs")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--num-beams", type=int, default=None)
    parser.add_argument("--do-sample", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--top-k", type=int, default=None, help="antarctic: table entries per image")
    parser.add_argument("--num-candidates", type=int, default=None, help="antarctic: candidates re-ranked by CLIP")
    add_cache_search(parser)
    parser.add_argument("--cpu", action="store_true", help="run on CPU even where a GPU is present")
    parser.add_argument("--pack-weights", action="store_true",
                        help="CPU: multiply by oneDNN-packed copies of the fp32 linear weights (faster decoding, "
                             "equal to rounding; the copies take the weights' memory once more)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this process (+ DataLoader workers), one rank per accelerate process; ray: a pool "
                             "of Ray actors taking shards as they free up (pip install 'hf-captioners[ray]')")
    ray = parser.add_argument_group("--engine ray")
    ray.add_argument("--ray-address", default=None,
                     help="head of a running cluster (host:port, auto or ray://...); default: start a local one")
    ray.add_argument("--ray-workers", type=_positive_int, default=None,
                     help="actors, each holding one model (default: as many as the cluster holds)")
    ray.add_argument("--ray-cpus-per-worker", type=_positive_float, default=None, help="default 1")
    ray.add_argument("--ray-gpus-per-worker", type=_non_negative_float, default=None,
                     help="default: 1 when the cluster has GPUs and --cpu is not given, else 0")
    ray.add_argument("--ray-max-retries", type=_non_negative_int, default=None,
                     help="times a shard is handed out again after its worker died or raised, and times each "
                          "worker is restarted (default 3)")
    ray.add_argument("--ray-temp-dir", default=None, help="local cluster: folder for Ray's session files (keep it short)")


def generate_kwargs_from(args: argparse.Namespace) -> dict:
    names = ("max_new_tokens", "num_beams", "do_sample", "temperature", "top_p")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _check_model(model: str) -> None:
    """Catch a wrong model path before torch loads (seconds) and in words, not as a Hub lookup failure."""
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise OperatorError(f"model folder {model!r} has no config.json: pass a folder written by "
                                f"save_pretrained (original checkpoints convert with `hf-captioners convert`)")
    elif os.path.exists(model):
        raise OperatorError(f"model {model!r} is a file: pass the folder it was saved in, or a Hub id")
    elif not _HUB_ID.fullmatch(model):
        raise OperatorError(f"model folder {model!r} does not exist: pass a saved captioner folder or a Hub id")


def _plan(args: argparse.Namespace) -> tuple[tuple[str, ...], list[str]]:
    """Everything that can be wrong in the command, checked before any model loads."""
    from hf_captioners.data.shards import expand_shard_specs
    from hf_captioners.recaption.engine import check_outputs

    formats = tuple(f for f in args.extra_formats.split(",") if f)
    if set(formats) - {"jsonl", "parquet"}:
        raise OperatorError(f"--extra-formats {args.extra_formats!r}: choose from jsonl,parquet (comma separated)")
    _check_model(args.model)
    shards = expand_shard_specs(args.shards)
    check_outputs(shards, args.out)
    return formats, shards


def _operator_error(error: BaseException, message: str | None = None) -> int:
    logger.debug("caption-shards stopped before captioning", exc_info=error)
    message = " ".join((message or str(error)).split()) or type(error).__name__
    print(f"caption-shards: error: {message}", file=sys.stderr)
    return 2


def _check_engine(args: argparse.Namespace) -> None:
    given = [f"--{name.replace('_', '-')}" for name in RAY_OPTIONS if getattr(args, name, None) is not None]
    if args.engine != "ray":
        if given:
            raise OperatorError(f"{', '.join(given)} given without --engine ray: add --engine ray or drop them")
        return
    try:
        import ray  # noqa: F401
    except ImportError as error:
        raise OperatorError(f"--engine ray needs Ray, which is not installed here ({error}): "
                            f"pip install 'hf-captioners[ray]', or use --engine local") from error
    if args.ray_address is not None:
        from hf_captioners.recaption.ray_engine import check_address

        check_address(args.ray_address)
    if args.cpu and args.ray_gpus_per_worker:
        raise OperatorError("--cpu with --ray-gpus-per-worker above 0: drop one of them")


def run(args: argparse.Namespace) -> int:
    try:
        _check_engine(args)
        formats, shards = _plan(args)
    except (OperatorError, OSError, ValueError) as error:
        return _operator_error(error)
    if args.engine == "ray":
        return _run_ray(args, formats, shards)

    import torch
    from accelerate import PartialState

    from hf_captioners.io_utils import atomic_write_json
    from hf_captioners.recaption.adapters import load_captioner
    from hf_captioners.recaption.engine import caption_shards

    # Without a GPU, `accelerate launch --multi_gpu` processes only form a group when CPU is asked for explicitly.
    state = PartialState(cpu=args.cpu or not torch.cuda.is_available())
    try:
        captioner = load_captioner(
            args.model,
            device=None if args.device_map else state.device,
            dtype=args.dtype,
            device_map=args.device_map,
            generate_kwargs=generate_kwargs_from(args),
            top_k=args.top_k,
            num_candidates=args.num_candidates,
            use_index=use_index(args),
            pack_weights=args.pack_weights,
        )
    except (OSError, ValueError) as error:
        return _operator_error(error, f"cannot load the model {args.model!r} ({error}): pass a saved Altogether "
                                      f"or antarctic folder, or a Hub id reachable from here")
    summary = caption_shards(
        captioner, shards, args.out, batch_size=args.batch_size, num_workers=args.num_workers,
        rank=state.process_index, world_size=state.num_processes, extra_formats=formats,
        max_pixels=args.max_pixels, progress=not args.no_progress and state.is_local_main_process,
        accept_partial=args.accept_partial,
    )
    atomic_write_json(f"{args.out}/_summary.rank{state.process_index}.json", vars(summary) | {"images_per_second": summary.images_per_second})
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        totals = gather_object([vars(summary).copy()])  # every rank gets every rank's summary, so all exit alike
        keys = ("shards_done", "shards_skipped", "shards_failed", "shards_partial", "records", "captioned", "errors")
        for key in keys:
            setattr(summary, key, sum(t[key] for t in totals))
        summary.seconds = max(t["seconds"] for t in totals)
    if state.is_main_process:
        print(summary.line() + (f" ({state.num_processes} processes)" if state.num_processes > 1 else ""))
    return 1 if summary.shards_failed else 0


def _run_ray(args: argparse.Namespace, formats: tuple[str, ...], shards: list[str]) -> int:
    """The Ray engine: this process only schedules; each actor loads the model and reads, preprocesses,
    captions and commits whole shards."""
    import ray

    from hf_captioners.io_utils import atomic_write_json
    from hf_captioners.recaption.ray_engine import (
        LoadCaptioner,
        RayEngineError,
        caption_shards_ray,
        start_ray,
    )

    cpus = args.ray_cpus_per_worker or 1
    local_cpus = max(os.cpu_count() or 1, int(cpus * (args.ray_workers or 1) + 0.999))
    try:
        started = start_ray(args.ray_address, num_cpus=None if args.ray_address else local_cpus,
                            temp_dir=args.ray_temp_dir)
    except (ConnectionError, OSError, ValueError, RuntimeError) as error:
        where = f"the Ray cluster at {args.ray_address!r}" if args.ray_address else "a local Ray cluster"
        return _operator_error(error, f"cannot start or reach {where} ({error}): check the address, or the "
                                      f"local machine's /tmp and shared memory")
    try:
        gpus = args.ray_gpus_per_worker
        if gpus is None:
            gpus = 1.0 if not args.cpu and ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        factory = LoadCaptioner(args.model, {
            "dtype": args.dtype, "device_map": args.device_map, "generate_kwargs": generate_kwargs_from(args),
            "top_k": args.top_k, "num_candidates": args.num_candidates,
            "use_index": use_index(args), "pack_weights": args.pack_weights,
        })
        try:
            summary = caption_shards_ray(
                factory, shards, args.out, num_workers=args.ray_workers, num_cpus_per_worker=cpus,
                num_gpus_per_worker=gpus, max_retries=3 if args.ray_max_retries is None else args.ray_max_retries,
                batch_size=args.batch_size, extra_formats=formats, max_pixels=args.max_pixels,
                accept_partial=args.accept_partial, progress=not args.no_progress,
            )
        except RayEngineError as error:
            return _operator_error(error)
    finally:
        if started:
            ray.shutdown()
    atomic_write_json(f"{args.out}/_summary.ray.json", vars(summary) | {"images_per_second": summary.images_per_second})
    print(summary.line())
    return 1 if summary.shards_failed or summary.shards_lost else 0
