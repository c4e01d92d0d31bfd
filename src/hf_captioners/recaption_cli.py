"""`hf-captioners caption-shards MODEL SHARDS... --out OUT`: re-caption webdataset shards, resumably.

Run under `accelerate launch` (or torchrun) for several processes / GPUs: each rank takes its own shards.
Exit status: 0 when every shard is finished, 1 when some shard could not be read to its end (it is kept as
`{shard}.partial.json` and retried by the next run), 2 for a mistake in the command (one line on stderr;
the traceback with `--log-level DEBUG`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys

logger = logging.getLogger(__name__)

DTYPES = ("float32", "float16", "bfloat16", "auto")
# `org/name` or `name`: anything else that is not on disk can only have been meant as a folder
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


class OperatorError(Exception):
    """A mistake in the command: reported in one line (problem and fix) with exit status 2."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


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
    parser.add_argument("--cpu", action="store_true", help="run on CPU even where a GPU is present")
    parser.add_argument("--no-progress", action="store_true")


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
    from .recaption import check_outputs, expand_shard_specs

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


def run(args: argparse.Namespace) -> int:
    try:
        formats, shards = _plan(args)
    except (OperatorError, OSError, ValueError) as error:
        return _operator_error(error)

    import torch
    from accelerate import PartialState

    from .captioners import load_captioner
    from .io_utils import atomic_write_json
    from .recaption import caption_shards

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
    state.wait_for_everyone()
    if state.num_processes > 1 and state.is_main_process:
        totals = [json.load(open(f"{args.out}/_summary.rank{r}.json")) for r in range(state.num_processes)]
        keys = ("shards_done", "shards_skipped", "shards_failed", "shards_partial", "records", "captioned", "errors")
        for key in keys:
            setattr(summary, key, sum(t[key] for t in totals))
        summary.seconds = max(t["seconds"] for t in totals)
    if state.is_main_process:
        print(summary.line() + (f" ({state.num_processes} processes)" if state.num_processes > 1 else ""))
    return 1 if summary.shards_failed else 0
