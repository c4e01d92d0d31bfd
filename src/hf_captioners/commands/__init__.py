"""`hf-captioners` command line. Each subcommand lives in its own module and is imported only when run."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hf_captioners.errors import OperatorError

DTYPES = ("float32", "float16", "bfloat16", "auto")  # as `from_pretrained(dtype=...)` takes them


def add_cache_search(parser) -> None:
    """`--cache-search {exact,index}` of the commands that caption with antarctic; read it with `use_index`."""
    parser.add_argument("--cache-search", choices=("exact", "index"), default=None,
                        help="antarctic: search the n-gram cache exactly or through its saved faiss index "
                             "(default: exact, unless the cache is kept in its index only)")


def use_index(args) -> bool | None:
    """`--cache-search` as the pipelines' `use_index`: True, False, or None (the cache's default)."""
    return None if args.cache_search is None else args.cache_search == "index"

# name -> (module, help). A module provides `add_arguments(parser)` and `run(args) -> int`.
SUBCOMMANDS = {
    "toyworld": ("hf_captioners.commands.toyworld", "generate the seeded toy world in the real datasets' formats"),
    "stories": ("hf_captioners.commands.stories", "continue captions (or captioned images) into stories with a causal LM"),
    "pretrain-backbones": ("hf_captioners.commands.pretrain_backbones", "pretrain the toy CLIP, causal LM and BART backbones"),
    "caption-shards": ("hf_captioners.commands.caption_shards", "re-caption webdataset shards, resumable and exactly once"),
    "evaluate": ("hf_captioners.commands.evaluate", "caption an eval set and report CIDEr-D (no Java), BLEU, ROUGE-L, CLIPScore"),
    "convert": ("hf_captioners.commands.convert", "convert original checkpoints (open_clip, ClipCap, Altogether, antarctic) to Transformers folders"),
    "serve": ("hf_captioners.commands.serve", "a local Gradio page: the captioners side by side, batch tab, API"),
    "cache-index": ("hf_captioners.commands.cache_index", "build a faiss index beside an antarctic folder's n-gram cache"),
    "push": ("hf_captioners.commands.push", "push a saved captioner with its remote code and a rendered model card to the Hub (or --dry-run)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-captioners", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING, ...)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand. An operator's mistake (`OperatorError`, or a file or folder that is missing, of the wrong
    kind or unreadable) ends in one line on stderr and status 2; its traceback is logged at DEBUG. Anything else
    is a bug and propagates with its traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except (OperatorError, OSError) as error:
        logging.getLogger("hf_captioners.commands").debug("%s stopped", args.command, exc_info=error)
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"hf-captioners {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
