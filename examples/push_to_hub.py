"""Push a trained or converted captioner to the Hugging Face Hub with a model card filled from an evaluation.

    # 1. evaluate (writes runs/eval/results.json)
    hf-captioners evaluate --model runs/altogether --toyworld data/toyworld --out runs/eval
    # 2. look at exactly what would be uploaded
    python examples/push_to_hub.py runs/altogether me/altogether-toy --results runs/eval --dry-run /tmp/stage
    # 3. upload (needs `huggingface-cli login` or --token)
    python examples/push_to_hub.py runs/altogether me/altogether-toy --results runs/eval --private

The uploaded repository carries its own model code, processor and `image-to-text` pipeline, so users need
only transformers: `AutoModel.from_pretrained("me/altogether-toy", trust_remote_code=True)`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hf_captioners.hub.push import push_to_hub


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="saved Altogether or antarctic folder (save_pretrained of model + processor)")
    parser.add_argument("repo_id")
    parser.add_argument("--results", help="results.json of `hf-captioners evaluate` (or its folder)")
    parser.add_argument("--eval-dataset-name", default="the evaluation set")
    parser.add_argument("--dry-run", metavar="DIR", help="write the folder that would be uploaded, upload nothing")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision")
    parser.add_argument("--commit-message")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    result = push_to_hub(args.folder, args.repo_id, private=args.private, revision=args.revision,
                         commit_message=args.commit_message, dry_run_dir=args.dry_run, results=args.results,
                         eval_dataset_name=args.eval_dataset_name)  # fmt: skip
    if args.dry_run:
        files = sorted(p.name for p in Path(result).iterdir())
        print(f"dry run: {len(files)} files in {result} ({', '.join(files)}); README.md is the model card")
    else:
        print(f"pushed {args.folder} to https://huggingface.co/{args.repo_id}: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
