"""Loading captioner folders and running one image through each, with everything the page shows.

Kept free of Gradio so the logic is testable and reusable; `app.py` only lays it out.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hf_captioners.registry import CAPTIONERS, model_pipeline

logger = logging.getLogger(__name__)

MAX_MEMBER_BYTES = 64 * 1024 * 1024
_WORD = re.compile(r"\w+", re.UNICODE)


class ModelFolderError(ValueError):
    """A folder that is not a captioner this demo can serve; the message is one line for the CLI."""


@dataclass
class LoadedModel:
    name: str
    kind: str
    path: str
    model: object
    processor: object
    base_cache: object = None
    pipeline: object = None

    @property
    def reads_alt_text(self) -> bool:
        return self.kind == "altogether" and getattr(self.processor, "prompt_length", 0) > 0


@dataclass
class Decoding:
    """The page's decoding controls as `generate` kwargs."""

    mode: str = "greedy"
    num_beams: int = 3
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 32
    seed: int = 0

    def generate_kwargs(self) -> dict:
        kwargs = {"max_new_tokens": int(self.max_new_tokens)}
        if self.mode == "sampling":
            kwargs.update(do_sample=True, num_beams=1, temperature=float(self.temperature), top_p=float(self.top_p))
        elif self.mode == "beam":
            kwargs.update(do_sample=False, num_beams=max(1, int(self.num_beams)))
        elif self.mode == "greedy":
            kwargs.update(do_sample=False, num_beams=1)
        else:
            raise ValueError(f"unknown decoding {self.mode!r} (greedy | beam | sampling)")
        return kwargs


def model_type_of(path: str) -> str:
    """The folder's `model_type`, read without loading weights, so a wrong folder fails in a line."""
    config_path = Path(path) / "config.json"
    if not Path(path).is_dir():
        raise ModelFolderError(f"{path}: not a folder")
    if not config_path.is_file():
        raise ModelFolderError(f"{path}: no config.json, not a saved model folder")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (OSError, ValueError) as error:
        raise ModelFolderError(f"{path}: unreadable config.json ({error})") from error
    if model_type not in CAPTIONERS:
        raise ModelFolderError(f"{path}: unsupported model_type {model_type!r} (supported: {', '.join(CAPTIONERS)})")
    return model_type


def _display_name(path: str, taken: set[str]) -> str:
    folder = Path(path).resolve()
    name = folder.parent.name if folder.name in ("final", "model") and folder.parent.name else folder.name
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}-{n}", n + 1
    taken.add(unique)
    return unique


def load_models(paths: list[str]) -> list[LoadedModel]:
    """Every folder checked first (one-line errors), then loaded through the Auto classes."""
    from transformers import AutoModel, AutoProcessor

    import hf_captioners.altogether as altogether
    import hf_captioners.antarctic  # noqa: F401  (registers the antarctic classes)

    altogether.register_auto_classes()
    kinds = [model_type_of(p) for p in paths]
    loaded, taken = [], set()
    for path, kind in zip(paths, kinds):
        model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        entry = LoadedModel(_display_name(path, taken), kind, str(path), model, processor)
        if kind == "antarctic":
            if model.cache is None:
                raise ModelFolderError(f"{path}: antarctic model without an n-gram cache (cache.safetensors)")
            entry.pipeline = model_pipeline(model, processor)
            entry.base_cache = entry.pipeline.retriever.cache
        logger.info("loaded %s (%s) from %s", entry.name, kind, path)
        loaded.append(entry)
    return loaded


# ---- alt-texts -------------------------------------------------------------------------------------------
def split_alt_texts(text: str | None) -> list[str]:
    """One alt-text per line; blank lines dropped."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def alt_text_as_seen(processor, alt_texts: list[str], input_ids=None) -> dict:
    """What the model reads: the prompt tokens the processor itself builds (normalised, cut to
    `prompt_length`), decoded, and whether the cut removed anything."""
    from hf_captioners.altogether.processing_altogether import join_alt_texts

    raw = getattr(processor, "raw_text", False)
    joined = join_alt_texts(alt_texts or None, strip_html=getattr(processor, "strip_html", True), raw=raw)
    total = len(processor.tokenizer(joined, add_special_tokens=False)["input_ids"]) if joined else 0
    if input_ids is None:
        input_ids = processor(alt_text=alt_texts or "", return_tensors=None)["input_ids"][0]
    ids = input_ids.tolist() if hasattr(input_ids, "tolist") else list(input_ids)
    prompt = list(ids[processor.prefix_length : processor.prefix_length + processor.prompt_length])
    pad = processor.tokenizer.pad_token_id
    kept = [t for t in prompt if t != pad]
    seen = processor.tokenizer.decode(kept, skip_special_tokens=False) if kept else ""
    return {"joined": joined, "seen": seen, "tokens": total, "kept_tokens": len(kept),
            "prompt_length": processor.prompt_length, "truncated": total > len(kept)}


def highlight_kept_words(caption: str, source: str, label: str = "from alt-text") -> list[tuple[str, str | None]]:
    """(text, label) spans: caption words that also occur in the alt-text the model saw are labelled."""
    vocabulary = {w.lower() for w in _WORD.findall(source)}
    spans: list[tuple[str, str | None]] = []
    last = 0
    for match in _WORD.finditer(caption):
        if match.group().lower() in vocabulary:
            if match.start() > last:
                spans.append((caption[last : match.start()], None))
            spans.append((match.group(), label))
            last = match.end()
    if last < len(caption):
        spans.append((caption[last:], None))
    return spans


# ---- captioning ------------------------------------------------------------------------------------------
@dataclass
class Captioner:
    """All loaded models behind one lock: CPU torch runs one call at a time and antarctic caches are swapped."""

    models: list[LoadedModel]
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def antarctic(self) -> list[LoadedModel]:
        return [m for m in self.models if m.kind == "antarctic"]

    def caption(self, image, alt_texts: list[str], decoding: Decoding, top_k: int | None = None,
                num_candidates: int | None = None, caches: dict | None = None) -> list[dict]:
        """One result dict per model; a failing model gives an `error`, the others still caption."""
        results = []
        with self.lock:
            for entry in self.models:
                start = time.perf_counter()
                try:
                    if decoding.mode == "sampling":
                        torch.manual_seed(int(decoding.seed))
                    if entry.kind == "altogether":
                        result = self._altogether(entry, image, alt_texts, decoding)
                    else:
                        cache = (caches or {}).get(entry.name) or entry.base_cache
                        result = self._antarctic(entry, image, decoding, top_k, num_candidates, cache)
                except Exception as error:  # one model's failure must not hide the others' captions
                    logger.exception("%s failed", entry.name)
                    result = {"caption": "", "error": f"{type(error).__name__}: {error}"}
                result.update(model=entry.name, kind=entry.kind, ms=round((time.perf_counter() - start) * 1000, 1))
                results.append(result)
        return results

    @torch.no_grad()
    def _altogether(self, entry: LoadedModel, image, alt_texts, decoding: Decoding) -> dict:
        processor, model = entry.processor, entry.model
        inputs = processor(images=image, alt_text=alt_texts or None, return_tensors="pt").to(model.device)
        sequences = model.generate(**inputs, **decoding.generate_kwargs())
        caption = processor.batch_decode(sequences)[0]
        result = {"caption": caption, "error": None}
        if entry.reads_alt_text:
            seen = alt_text_as_seen(processor, alt_texts, inputs["input_ids"][0])
            result.update(alt_text=seen, highlighted=highlight_kept_words(caption, seen["seen"]))
        else:
            result.update(alt_text=None, highlighted=[(caption, None)])
        return result

    @torch.no_grad()
    def _antarctic(self, entry: LoadedModel, image, decoding: Decoding, top_k, num_candidates, cache) -> dict:
        processor = entry.processor
        if top_k:
            top_k = min(int(top_k), len(cache))  # a slider past the cache size means "all of it"
        pixel_values = processor(images=image)["pixel_values"]
        out = entry.pipeline.caption_pixels(pixel_values, top_k=top_k, num_candidates=num_candidates, cache=cache,
                                            generate_kwargs=decoding.generate_kwargs(), return_candidates=True)[0]
        winner = max(range(len(out["scores"])), key=out["scores"].__getitem__)
        ranked = sorted(range(len(out["candidates"])), key=lambda i: -out["scores"][i])
        return {
            "caption": out["caption"], "error": None, "table": out["table"],
            "retrieved": [[text, round(float(s), 4)] for text, s in zip(out["entries"], out["entry_scores"])],
            "candidates": [[i == winner, out["candidates"][i], round(float(out["scores"][i]), 4)] for i in ranked],
            "cache_size": len(cache),
        }

    def extend_caches(self, caches: dict | None, lines: list[str]) -> tuple[dict, list[str]]:
        """Session caches with `lines` added to every antarctic model's; returns (caches, problems)."""
        caches = dict(caches or {})
        problems = []
        with self.lock:
            for entry in self.antarctic:
                cache = caches.get(entry.name) or entry.base_cache
                new = [line for line in dict.fromkeys(lines) if line not in set(cache.entries)]
                skipped = sorted(set(lines) - set(new))
                if skipped:
                    problems.append(f"{entry.name}: already in the cache: {', '.join(skipped)}")
                if not new:
                    continue
                extended = cache.copy()
                try:
                    entry.pipeline.retriever.with_cache(extended).cache.add(new)  # gives it the text tower
                except Exception as error:
                    problems.append(f"{entry.name}: {error}")
                    continue
                caches[entry.name] = extended
        return caches, problems


# ---- batches ---------------------------------------------------------------------------------------------
def iter_batch_items(paths: list[str]):
    """(key, image bytes or None, alt-texts, error) per image, from `.tar` shards (webdataset layout) or files."""
    for path in paths:
        name = os.path.basename(path)
        if name.lower().endswith(".tar"):
            yield from _iter_tar(path)
        else:
            try:
                data = Path(path).read_bytes()
            except OSError as error:
                yield Path(name).stem, None, [], f"{name}: unreadable ({error})"
                continue
            yield Path(name).stem, data, [], None


def _iter_tar(path: str):
    from hf_captioners.data.shards import ShardEnd, iter_shard_records

    name = os.path.basename(path)
    for item in iter_shard_records(path, max_member_bytes=MAX_MEMBER_BYTES):
        if isinstance(item, ShardEnd):
            if item.error:
                yield name, None, [], f"{name}: {item.error}"
            continue
        yield item.key, item.image_bytes, item.alt_texts, f"{item.key}: {item.error}" if item.error else None


def batch_jsonl_line(key: str, results: list[dict] | None, error: str | None) -> str:
    captions = {r["model"]: r["caption"] for r in results or []}
    errors = [f"{r['model']}: {r['error']}" for r in results or [] if r.get("error")]
    if error:
        errors.insert(0, error)
    return json.dumps({"key": key, "captions": captions, "error": "; ".join(errors) or None}, ensure_ascii=False)


def load_image(data, name: str):
    from hf_captioners.altogether.image_utils import ImageInputError, load_rgb_image

    try:
        return load_rgb_image(data, name=name)
    except ImageInputError as error:  # PIL names in-memory data by its object repr; users want the key
        raise ImageInputError(re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", repr(name), str(error))) from error
