"""`hf-captioners push`: a saved captioner, its remote code and a rendered card to the Hub (or a dry-run folder)."""

from __future__ import annotations

from pathlib import Path

from hf_captioners.hub.push import push_to_hub


def add_arguments(parser) -> None:
    parser.add_argument("folder", help="a saved Altogether or antarctic folder (model + processor)")
    parser.add_argument("repo_id", help="Hub repository, e.g. me/altogether-opt-1.3b")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to push to (created if missing)")
    parser.add_argument("--commit-message")
    parser.add_argument("--dry-run", metavar="DIR", help="only write the folder that would be uploaded to DIR")
    parser.add_argument("--results", help="results.json (or its folder) of `hf-captioners evaluate`, for the card")
    parser.add_argument("--eval-dataset-name", default="the evaluation set", help="how the card names the eval set")
    parser.add_argument("--eval-dataset-id", help="Hub id of the eval set for the model-index")
    parser.add_argument("--license", help="override the card's license")
    parser.add_argument("--base-model", action="append", help="override base models (repeat)")
    parser.add_argument("--dataset", action="append", help="override training datasets (repeat)")
    parser.add_argument("--token", help="Hub token (default: the logged-in one)")


def run(args) -> int:
    card = {"license": args.license, "base_model": args.base_model, "datasets": args.dataset,
            "eval_dataset_name": args.eval_dataset_name, "eval_dataset_id": args.eval_dataset_id}  # fmt: skip
    result = push_to_hub(args.folder, args.repo_id, private=args.private, revision=args.revision,
                         commit_message=args.commit_message, dry_run_dir=args.dry_run, results=args.results,
                         token=args.token, **card)  # fmt: skip
    if args.dry_run:
        files = [p for p in Path(result).rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files) / 1e6
        print(f"push (dry run): {len(files)} files, {size:.1f} MB staged in {result}; nothing uploaded")
    else:
        print(f"push: {args.folder} -> {args.repo_id}{'@' + args.revision if args.revision else ''}: {result}")
    return 0
