"""COCO caption files, one reader for both layouts: Karpathy's `dataset_coco.json` (`images[].sentences`, with
`split`) and COCO's own `captions_*.json` (`images` + `annotations`). Evaluation and antarctic's training read
them through `read_coco_captions`, so both skip the same records for the same reasons."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hf_captioners.data import log_skip, read_json

__all__ = ["read_coco_captions"]


def read_coco_captions(path, image_root=None, splits: str | None = None,
                       skip: Callable[[str, str], None] = log_skip) -> list[dict]:
    """[{key, path, captions}] of the usable images; `splits` (comma-separated, Karpathy layout) keeps those.

    A record is skipped, with `skip(key, reason)`, for a key seen before, a missing file name, or no non-empty
    caption (each empty caption is reported too); captions are stripped. A file that is not such a json, or
    has no usable image at all, raises ValueError naming it.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: expected Karpathy-style {{'images': [...]}} or COCO {{'images', 'annotations'}}")
    raw = []
    if "annotations" in data:
        by_image: dict = {}
        for ann in data["annotations"]:
            by_image.setdefault(ann.get("image_id"), []).append(ann.get("caption"))
        for image in data["images"]:
            raw.append((image.get("id"), image.get("file_name"), by_image.get(image.get("id"), [])))
    else:
        wanted = {s.strip() for s in (splits or "").split(",") if s.strip()}
        for image in data["images"]:
            if wanted and image.get("split") not in wanted:
                continue
            name = image.get("filename")
            if name and image.get("filepath"):
                name = f"{image['filepath']}/{name}"
            key = image.get("cocoid", image.get("imgid", name))
            raw.append((key, name, [s.get("raw") for s in image.get("sentences") or [] if isinstance(s, dict)]))
    records, seen = [], set()
    for index, (key, name, captions) in enumerate(raw):
        key = str(key if key is not None else name if name else f"#{index}")
        if key in seen:
            skip(key, "DuplicateKey: another image has the same id")
            continue
        seen.add(key)
        if not name:
            skip(key, "MissingField: no image file name")
            continue
        kept = []
        for j, caption in enumerate(captions):
            if isinstance(caption, str) and caption.strip():
                kept.append(caption.strip())
            else:
                skip(f"{key}#{j}", "EmptyCaption: empty or missing caption")
        if not kept:
            skip(key, "NoCaptions: the image has no usable caption")
            continue
        records.append({"key": key, "path": str(root / name), "captions": kept})
    if not raw:
        raise ValueError(f"{path}: no images{f' in split(s) {splits!r}' if splits else ''}")
    if not records:
        raise ValueError(f"{path}: none of its {len(raw)} images is usable (see the warnings above)")
    return records
