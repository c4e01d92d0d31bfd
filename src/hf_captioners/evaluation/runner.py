"""Caption evaluation: an eval set + a captioner (or saved captions) -> metrics table, results JSON, captions.

Three eval-set layouts, read by `hf_captioners.data`: Altogether-FT json (`{"data": [{alt, round3, img_path,
...}]}`), COCO-style json (Karpathy `dataset_coco.json` with `images[].sentences`, or COCO annotations
`captions_*.json`), and a toy-world split. Captions come from a pipeline callable — `pipe(images, alt_text=[...], batch_size=B,
generate_kwargs={...})` returning one `[{"generated_text": ...}]` per image, as both captioners' remote-code
pipelines do — or from a jsonl of earlier predictions, or from the alt-texts themselves (the "copy the
alt-text" baseline). Scoring needs no model, so it is testable and reusable on its own.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_captioners.io_utils import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

__all__ = [
    "EvalExample", "format_table", "generate_captions", "load_eval_set", "load_predictions", "run_evaluation",
    "score_captions", "write_captions",
]


@dataclass
class EvalExample:
    key: str
    image: Any  # a path, bytes or a PIL image: anything `load_rgb_image` accepts
    references: list[str]
    alt_text: str = ""
    name: str | None = None  # toy world: the name only the alt-text knows
    meta: dict = field(default_factory=dict)


def _load_ft(path: Path, image_root: Path) -> list[EvalExample]:
    from hf_captioners.data.altogether_ft import read_altogether_ft

    out = []
    for rec in read_altogether_ft(path):
        name = rec.get("toy_name") if rec.get("toy_alt_has_name") else None
        # keyed as training keys them: the record's key, else its image path
        out.append(EvalExample(key=str(rec.get("key") or rec["img_path"]), image=image_root / rec["img_path"], references=[rec["round3"]],
                               alt_text=rec.get("alt") or "", name=name, meta={"source": rec.get("source")}))
    return out


def _load_coco(path: Path, image_root: Path, split: str | None) -> list[EvalExample]:
    from hf_captioners.data.coco import read_coco_captions

    return [EvalExample(key=r["key"], image=Path(r["path"]), references=r["captions"])
            for r in read_coco_captions(path, image_root, split)]


def _load_toyworld(root: Path, split: str, references: str) -> list[EvalExample]:
    from hf_captioners.toyworld import load_hf_split

    ds = load_hf_split(root, split).cast_column("image", __import__("datasets").Image(decode=False))
    out = []
    for row in ds:
        refs = [row["caption"]] if references == "dense" else list(row["captions"])
        out.append(EvalExample(key=row["key"], image=row["image"]["bytes"], references=refs, alt_text=row["alt_text"],
                               name=row["name"] if row["alt_has_name"] else None))
    return out


def load_eval_set(
    ft_json: str | None = None,
    coco_json: str | None = None,
    toyworld: str | None = None,
    image_root: str | None = None,
    split: str | None = None,
    references: str = "dense",
    limit: int | None = None,
) -> list[EvalExample]:
    """Exactly one of `ft_json`, `coco_json`, `toyworld`. `references` ("dense" | "short") picks the toy
    world's dense re-aligned caption or its 5 COCO-style captions."""
    if sum(x is not None for x in (ft_json, coco_json, toyworld)) != 1:
        raise ValueError("give exactly one eval set: an Altogether-FT json, a COCO-style json, or a toy-world root")
    if references not in ("dense", "short"):
        raise ValueError(f"references must be 'dense' or 'short', got {references!r}")
    if ft_json is not None:
        examples = _load_ft(Path(ft_json), Path(image_root) if image_root else Path(ft_json).parent)
    elif coco_json is not None:
        examples = _load_coco(Path(coco_json), Path(image_root) if image_root else Path(coco_json).parent, split)
    else:
        examples = _load_toyworld(Path(toyworld), split or "eval", references)
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise ValueError("the eval set is empty (check the split name and the file)")
    return examples


def generate_captions(
    pipe: Callable,
    examples: Sequence[EvalExample],
    batch_size: int = 16,
    generate_kwargs: dict | None = None,
    use_alt_text: bool = True,
    progress: bool = True,
) -> tuple[list[str | None], dict[str, str]]:
    """Batched captioning; a failing batch is retried example by example, and an example that still fails
    gets None and an entry in the returned {key: error} map instead of stopping the run."""
    from tqdm.auto import tqdm

    from hf_captioners.altogether.image_utils import ImageInputError, load_rgb_image

    captions: list[str | None] = [None] * len(examples)
    errors: dict[str, str] = {}

    def call(batch):
        images = [load_rgb_image(ex.image, name=ex.key) for ex in batch]
        kwargs = {"batch_size": len(batch), "generate_kwargs": dict(generate_kwargs or {})}
        if use_alt_text:
            kwargs["alt_text"] = [ex.alt_text or None for ex in batch]
        outputs = pipe(images, **kwargs)
        if len(outputs) != len(batch):
            raise RuntimeError(f"pipeline returned {len(outputs)} results for {len(batch)} images")
        return [(o[0] if isinstance(o, list) else o)["generated_text"] for o in outputs]

    bar = tqdm(total=len(examples), desc="captioning", unit="img", disable=not progress)
    for start in range(0, len(examples), batch_size):
        batch = list(examples[start:start + batch_size])
        try:
            captions[start:start + len(batch)] = call(batch)
        except Exception as err:  # noqa: BLE001 - isolate the bad record, keep the run going
            logger.warning("batch at %d failed (%s); retrying its %d examples one by one", start, err, len(batch))
            for j, ex in enumerate(batch):
                try:
                    captions[start + j] = call([ex])[0]
                except (ImageInputError, Exception) as one_err:  # noqa: BLE001
                    errors[ex.key] = f"{type(one_err).__name__}: {one_err}"
                    logger.error("example %s: %s", ex.key, errors[ex.key])
        bar.update(len(batch))
    bar.close()
    return captions, errors


def load_predictions(path: str | Path) -> dict[str, str]:
    """A captions jsonl ({"key": ..., "caption": ...} per line, as `write_captions` writes) -> {key: caption}."""
    out = {}
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key, caption = str(rec["key"]), rec["caption"]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{path}:{lineno}: expected {{'key': ..., 'caption': str}} ({err})") from err
            if caption is not None and not isinstance(caption, str):
                raise ValueError(f"{path}:{lineno}: caption must be a string, got {type(caption).__name__}")
            out[key] = caption
    return out


def write_captions(path: str | Path, examples: Sequence[EvalExample], captions: Sequence[str | None]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for ex, caption in zip(examples, captions):
            handle.write(json.dumps({"key": ex.key, "caption": caption, "alt_text": ex.alt_text,
                                     "references": ex.references}, ensure_ascii=False) + "\n")


def score_captions(
    examples: Sequence[EvalExample],
    captions: Sequence[str | None],
    clip: tuple[Any, Any] | None = None,
    clip_batch_size: int = 64,
    progress: bool = False,
) -> dict:
    """All metrics for captions aligned with `examples`. Missing captions (None) are scored as "" so a
    failed example costs its share of the score instead of silently shrinking the set."""
    from hf_captioners.metrics import alt_text_retention, bleu_rouge, caption_length_stats, cider_d

    preds = ["" if c is None else c for c in captions]
    refs = [ex.references for ex in examples]
    cider = cider_d(preds, refs)
    text = bleu_rouge(preds, refs)
    alts = [ex.alt_text for ex in examples]
    result = {
        "n": len(examples),
        "n_missing": sum(c is None for c in captions),
        "cider_d": cider["cider_d"],
        "bleu_4": text["bleu_4"],
        "rouge_l": text["rouge_l"],
        "retention": alt_text_retention(preds, alts)["retention"] if any(alts) else None,
        "lengths": caption_length_stats(preds),
        "reference_lengths": caption_length_stats([r for rs in refs for r in rs]),
        "per_example": {"cider_d": cider["scores"], "rouge_l": text["rouge_l_scores"]},
    }
    if any(ex.name for ex in examples):
        names = alt_text_retention(preds, alts, names=[ex.name for ex in examples])
        result["name_retention"] = names["retention"]
        result["name_retention_n"] = names["n_scored"]
        result["per_example"]["name_retention"] = names["scores"]
    if clip is not None:
        from hf_captioners.metrics import clip_scores

        model, processor = clip
        scores = clip_scores([ex.image for ex in examples], preds, model, processor, references=refs,
                             batch_size=clip_batch_size, progress=progress)
        result.update(clip_score=scores["clip_score"], ref_clip_score=scores["ref_clip_score"])
        result["per_example"].update(clip_score=scores["clip_scores"], ref_clip_score=scores["ref_clip_scores"])
    return result


_TABLE_ROWS = [("CIDEr-D", "cider_d", 1.0), ("BLEU-4", "bleu_4", 0.01), ("ROUGE-L", "rouge_l", 0.01),
               ("CLIPScore", "clip_score", 1.0), ("RefCLIPScore", "ref_clip_score", 1.0),
               ("alt-text retention", "retention", 1.0), ("name retention", "name_retention", 1.0)]


def format_table(metrics: dict) -> str:
    """A small fixed-width table (scores on a 0-1 scale, CIDEr-D as pycocoevalcap reports it)."""
    lines = [f"{'metric':<20}{'value':>10}", "-" * 30]
    for label, key, scale in _TABLE_ROWS:
        if metrics.get(key) is not None:
            lines.append(f"{label:<20}{metrics[key] * scale:>10.4f}")
    lengths = metrics["lengths"]
    lines.append(f"{'words/caption':<20}{lengths['mean']:>10.2f}")
    lines.append(f"{'examples':<20}{metrics['n']:>10d}")
    if metrics.get("n_missing"):
        lines.append(f"{'missing captions':<20}{metrics['n_missing']:>10d}")
    return "\n".join(lines)


def run_evaluation(
    examples: Sequence[EvalExample],
    out_dir: str | Path,
    pipe: Callable | None = None,
    predictions: dict[str, str] | None = None,
    baseline: str | None = None,
    batch_size: int = 16,
    generate_kwargs: dict | None = None,
    use_alt_text: bool = True,
    clip: tuple[Any, Any] | None = None,
    run_info: dict | None = None,
    progress: bool = True,
) -> dict:
    """Caption (or look up) every example, score, and write `results.json` + `captions.jsonl` to `out_dir`."""
    if sum(x is not None for x in (pipe, predictions, baseline)) != 1:
        raise ValueError("give exactly one caption source: a pipeline, predictions, or a baseline")
    out_dir = Path(out_dir)
    start = time.perf_counter()
    errors: dict[str, str] = {}
    if pipe is not None:
        captions, errors = generate_captions(pipe, examples, batch_size, generate_kwargs, use_alt_text, progress)
    elif predictions is not None:
        captions = [predictions.get(ex.key) for ex in examples]
        missing = [ex.key for ex, c in zip(examples, captions) if c is None]
        if missing:
            logger.warning("%d eval examples have no prediction (first: %s); scored as empty", len(missing), missing[:5])
    elif baseline == "alt_text":
        captions = [ex.alt_text for ex in examples]
    else:
        raise ValueError(f"unknown baseline {baseline!r}; the available one is 'alt_text'")
    seconds = time.perf_counter() - start
    write_captions(out_dir / "captions.jsonl", examples, captions)
    metrics = score_captions(examples, captions, clip=clip, progress=progress)
    metrics.update(errors=errors, caption_seconds=seconds, run=dict(run_info or {}))
    atomic_write_json(out_dir / "results.json", metrics, indent=2)
    return metrics
