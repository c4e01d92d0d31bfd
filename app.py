"""Hugging Face Space entry point: the same page as `hf-captioners serve`.

Models come from `HF_CAPTIONERS_MODELS` (space-separated local folders or Hub repo ids), else from the
folders `make demo` trains. On a Space the platform sets GRADIO_SERVER_NAME=0.0.0.0; locally it stays on
loopback.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))  # a Space runs from a checkout, not an installed package

from hf_captioners.serve.app import build_app, launch  # noqa: E402
from hf_captioners.serve.captioning import Captioner, load_models  # noqa: E402

DEMO_FOLDERS = ["results/runs/altogether/final", "results/runs/antarctic/final", "results/runs/clipcap/final"]


def model_folders() -> list[str]:
    """Local folders as given; anything else is a Hub repo id, downloaded once."""
    wanted = os.environ.get("HF_CAPTIONERS_MODELS", "").split()
    if not wanted:
        wanted = [str(ROOT / p) for p in DEMO_FOLDERS if (ROOT / p).is_dir()]
    if not wanted:
        raise SystemExit("app.py: no models: set HF_CAPTIONERS_MODELS or run `make demo` first")
    folders = []
    for item in wanted:
        if Path(item).is_dir():
            folders.append(item)
        else:
            from huggingface_hub import snapshot_download

            folders.append(snapshot_download(item))
    return folders


EXAMPLES = tempfile.mkdtemp(prefix="hf-captioners-examples-")
demo = build_app(Captioner(load_models(model_folders())), examples_dir=EXAMPLES,
                 title="hf-captioners: Altogether, ClipCap and antarctic side by side")

if __name__ == "__main__":
    launch(demo, host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
           port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), allowed_paths=[EXAMPLES])
