"""`hf-captioners serve MODEL_DIR [MODEL_DIR ...]`: check the folders, load them, serve the page."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dirs", nargs="+", metavar="MODEL_DIR",
                        help="saved Altogether / ClipCap / antarctic folders (e.g. results/runs/altogether/final)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--no-examples", action="store_true", help="skip the generated toy-world example images")
    parser.add_argument("--title", default="hf-captioners: captioners side by side")


def run(args: argparse.Namespace) -> int:
    from hf_captioners.serve.captioning import ModelFolderError, model_type_of

    try:
        for path in args.model_dirs:
            model_type_of(path)
    except ModelFolderError as error:
        print(f"hf-captioners serve: {error}", file=sys.stderr)
        return 2
    try:
        import gradio  # noqa: F401
    except ImportError:
        print('hf-captioners serve: Gradio is not installed; pip install -e ".[serve]"', file=sys.stderr)
        return 2

    from hf_captioners.serve.app import build_app, launch
    from hf_captioners.serve.captioning import Captioner, load_models

    try:
        models = load_models(args.model_dirs)
    except ModelFolderError as error:
        print(f"hf-captioners serve: {error}", file=sys.stderr)
        return 2
    examples = None if args.no_examples else tempfile.mkdtemp(prefix="hf-captioners-examples-")
    demo = build_app(Captioner(models), examples_dir=examples, title=args.title)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("binding to %s: the page is reachable from other machines", args.host)
    print(f"serving {', '.join(m.name for m in models)} on http://{args.host}:{args.port}")
    launch(demo, host=args.host, port=args.port, allowed_paths=[examples] if examples else None)
    return 0
