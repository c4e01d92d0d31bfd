"""Does a CLIP trained on Altogether's re-captions beat the same CLIP trained on the raw alt-texts?

Altogether exists to make CLIP training data: MetaCLIP trained on its re-captions, mixed with alt-texts.
This is that experiment in the toy world. The backbone split's shards are re-captioned by the trained
Altogether (through the re-captioning engine, from their alt-texts), then the toy CLIP recipe is trained
once per text condition on the same images, with the same seed and steps:

- `alt_text`: the records' raw alt-texts (junk and empty ones included, as the web gives them);
- `altogether`: the re-captions only;
- `mix`: each drawn pair takes the re-caption with probability `share` (MetaCLIP's setting), the share
  chosen among `MIX_SHARES` on the validation split by `selection_score`.

Each CLIP is scored on the validation and the test split (retrieval, zero-shot colour / shape / held-out
concept) with per-image results, so the report can put bootstrap intervals on every number.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["CONDITIONS", "MIX_SHARES", "SELECTION_METRICS", "recaption_split", "score_clip", "selection_score",
           "train_condition"]

CONDITIONS = ("alt_text", "altogether", "mix")
MIX_SHARES = (0.25, 0.5, 0.75)
# What picks the mix share on validation, and what the downstream claim compares on the test split.
SELECTION_METRICS = ("zero_shot_object_acc", "recall_at_1")


def recaption_split(model_dir: str | os.PathLike, toyworld: str | os.PathLike, split: str, out: str | os.PathLike,
                    batch_size: int = 32, max_new_tokens: int = 48, part: int = 0, parts: int = 1) -> dict[str, str]:
    """Re-caption one split's shards with a saved Altogether (greedy), as a user re-captions a dataset.

    `part` of `parts` is a rank of `parts` (the engine's own split of the shards), so that several processes
    can share a split."""
    from hf_captioners.data.shards import expand_shard_specs
    from hf_captioners.recaption.adapters import load_captioner
    from hf_captioners.recaption.engine import caption_shards, shard_outputs, shards_for_rank

    shards = expand_shard_specs(str(Path(toyworld) / "shards" / f"{split}-*.tar"))
    mine = shards_for_rank(shards, part, parts)
    captioner = load_captioner(str(model_dir), generate_kwargs={"do_sample": False, "max_new_tokens": max_new_tokens})
    # decoding in this process: it runs inside a worker of the demo's pool, one core each
    summary = caption_shards(captioner, shards, out, batch_size=batch_size, num_workers=0, progress=False,
                             rank=part, world_size=parts)
    if summary.shards_failed:
        raise RuntimeError(f"re-captioning {split}: {summary.line()}")
    captions: dict[str, str] = {}
    for shard in mine:
        rows = json.loads(shard_outputs(out, shard)["json"].read_text(encoding="utf-8"))
        captions.update({key: next(iter(value.values())) for key, value in rows.items()})
    logger.info("downstream: re-captioned %d %s images (%s)", len(captions), split, summary.line())
    return captions


def train_condition(toyworld: str | os.PathLike, out_dir: str | os.PathLike, synthetic: dict[str, str] | None,
                    share: float, seed: int, options: dict) -> dict:
    """One toy CLIP on the backbone split's images with raw alt-texts, re-captions, or a mix of both."""
    from hf_captioners.toyworld.backbones.clip import pretrain_clip

    return pretrain_clip(toyworld, out_dir, seed=seed, text_source="alt_texts", synthetic=synthetic,
                         synthetic_share=share, eval_split="val", progress=False, threads=1, **options)


def score_clip(model_dir: str | os.PathLike, toyworld: str | os.PathLike, split: str, held_out: tuple[str, ...],
               limit: int | None = None) -> dict:
    """A saved CLIP on one split, with per-image results (see `evaluate_clip`)."""
    from transformers import CLIPModel, CLIPProcessor

    from hf_captioners.toyworld.backbones.clip import _load_split, evaluate_clip

    processor = CLIPProcessor.from_pretrained(model_dir)
    model = CLIPModel.from_pretrained(model_dir).eval()
    pixels, captions, scenes, _ = _load_split(toyworld, split, limit, processor.image_processor, False)
    return evaluate_clip(model, processor.tokenizer, pixels, captions, scenes, held_out=held_out, per_example=True)


def selection_score(metrics: dict) -> float:
    """The mean of `SELECTION_METRICS`: the one number the mix share is chosen by."""
    return sum(metrics[name] for name in SELECTION_METRICS) / len(SELECTION_METRICS)
