"""`hf-captioners evaluate`: caption an eval set with a model folder (or score saved captions) and write
the metrics table, results.json and captions.jsonl."""

from __future__ import annotations

import argparse
import json

from hf_captioners.commands import DTYPES, add_cache_search, use_index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="captioner folder (remote-code image-to-text pipeline)")
    source.add_argument("--predictions", help="captions jsonl ({'key', 'caption'} per line) to score without a model")
    source.add_argument("--baseline", choices=["alt_text"], help="score a baseline: the alt-text copied as caption")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--ft-json", help="Altogether-FT json ({'data': [{alt, round3, img_path}]})")
    data.add_argument("--coco-json", help="COCO-style json (Karpathy dataset_coco.json or captions_*.json)")
    data.add_argument("--toyworld", help="toy-world root (uses its hf/<split>.parquet)")
    parser.add_argument("--image-root", help="folder img_path / file names are relative to (default: the json's folder)")
    parser.add_argument("--split", help="Karpathy split (e.g. test) or toy-world split (default eval)")
    parser.add_argument("--references", choices=["dense", "short"], default="dense",
                        help="toy world: dense re-aligned caption or the 5 COCO-style captions")
    parser.add_argument("--limit", type=int, help="evaluate only the first N examples")
    parser.add_argument("--out", required=True, help="output folder for results.json and captions.jsonl")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--generate-kwargs", default="{}", help="JSON dict passed to generate (e.g. '{\"num_beams\": 3}')")
    parser.add_argument("--no-alt-text", action="store_true", help="do not pass alt-texts to the captioner")
    parser.add_argument("--clip", help="CLIP folder (CLIPModel + processor) for CLIPScore / RefCLIPScore")
    parser.add_argument("--device", default=None, help="torch device for the captioner and CLIP (default: cpu)")
    parser.add_argument("--dtype", default=None, choices=DTYPES, help="captioner dtype")
    add_cache_search(parser)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hf_captioners.evaluation.runner import format_table, load_eval_set, load_predictions, run_evaluation

    try:
        generate_kwargs = json.loads(args.generate_kwargs)
    except json.JSONDecodeError as err:
        raise SystemExit(f"evaluate: --generate-kwargs is not valid JSON: {err}") from err
    if args.max_new_tokens is not None:
        generate_kwargs["max_new_tokens"] = args.max_new_tokens
    examples = load_eval_set(ft_json=args.ft_json, coco_json=args.coco_json, toyworld=args.toyworld,
                             image_root=args.image_root, split=args.split, references=args.references, limit=args.limit)
    pipe = predictions = clip = None
    if args.model:
        from transformers import pipeline

        kwargs = {"device": args.device} if args.device else {}
        if args.dtype:
            kwargs["dtype"] = args.dtype
        if args.cache_search:
            kwargs["use_index"] = use_index(args)
        pipe = pipeline("image-to-text", model=args.model, trust_remote_code=True, **kwargs)
    elif args.predictions:
        predictions = load_predictions(args.predictions)
    if args.clip:
        from transformers import AutoModel, AutoProcessor

        clip = (AutoModel.from_pretrained(args.clip).eval().to(args.device or "cpu"), AutoProcessor.from_pretrained(args.clip))
    source = args.model or args.predictions or f"baseline:{args.baseline}"
    metrics = run_evaluation(
        examples, args.out, pipe=pipe, predictions=predictions, baseline=args.baseline, batch_size=args.batch_size,
        generate_kwargs=generate_kwargs, use_alt_text=not args.no_alt_text, clip=clip,
        run_info={"source": source, "eval_set": args.ft_json or args.coco_json or args.toyworld, "split": args.split,
                  "references": args.references, "generate_kwargs": generate_kwargs, "clip": args.clip},
        progress=not args.no_progress,
    )
    print(format_table(metrics))
    out = Path(args.out)
    print(f"evaluate: {metrics['n']} examples, CIDEr-D {metrics['cider_d']:.4f}, {len(metrics['errors'])} failed; "
          f"wrote {out / 'results.json'} and {out / 'captions.jsonl'}")
    return 0 if len(metrics["errors"]) < metrics["n"] else 1
