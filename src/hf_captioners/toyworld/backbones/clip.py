"""A tiny CLIP (transformers `CLIPModel`) pretrained contrastively on toy images and their captions.

It stands in for OpenAI/MetaCLIP: antarctic scores n-grams ("red circle") against images with it and
Altogether's mapper reads its pooled image embedding, so colours and shapes must be told apart.
Captions are the five short ones and the dense caption WITHOUT the name: names are never drawn.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

from hf_captioners.toyworld.backbones.common import RECIPES, PretrainRun, caption_without_name

logger = logging.getLogger(__name__)

__all__ = [
    "encode_clip_images",
    "evaluate_clip",
    "pretrain_clip",
    "tiny_clip_config",
]


def tiny_clip_config(
    image_size: int = 64, hidden: int = 64, layers: int = 3, projection: int = 64, text_layers: int = 2
):
    """A ViT with 8-pixel patches (64 tokens at 64 px) and a small text tower; the vocabulary and ids are
    CLIP's own (49,408 tokens, bos 49406, eos 49407, pad 0 as open_clip pads)."""
    from transformers import CLIPConfig

    text = dict(
        vocab_size=49408, hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=text_layers,
        num_attention_heads=4, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=0,
    )
    vision = dict(
        image_size=image_size, patch_size=8, hidden_size=hidden, intermediate_size=hidden * 4,
        num_hidden_layers=layers, num_attention_heads=4,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection)


TEXT_SOURCES = ("captions", "alt_texts")


def _load_split(root, split: str, limit: int | None, image_processor, progress: bool, text_source: str = "captions"):
    """Pixels of every image (preprocessed once, they are tiny), each image's texts, scene and key.

    `text_source`: "captions" (the five short captions and the name-free dense caption: clean text) or
    "alt_texts" (the record's raw web alt-texts, empty ones included: what a CLIP trained on the web reads).
    A record whose image or scene cannot be read is logged and skipped, so one bad record does not stop a run.
    """
    import datasets
    from tqdm.auto import tqdm

    from hf_captioners.altogether.image_utils import ImageInputError, load_rgb_image
    from hf_captioners.toyworld import load_hf_split

    if text_source not in TEXT_SOURCES:
        raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}")
    table = load_hf_split(Path(root), split).cast_column("image", datasets.Image(decode=False))
    if limit is not None:
        table = table.select(range(min(limit, len(table))))
    pixels, captions, scenes, keys, skipped = [], [], [], [], 0
    chunk = 500
    for start in tqdm(range(0, len(table), chunk), desc=f"clip: load {split}", disable=not progress):
        rows = table[start : start + chunk]
        images = []
        for key, image, short, alts, scene in zip(rows["key"], rows["image"], rows["captions"], rows["alt_texts"],
                                                  rows["scene"]):
            try:
                rgb = load_rgb_image(image["bytes"], name=f"{split} record {key}")
                if text_source == "captions":
                    texts = [c for c in short if c and c.strip()] + [caption_without_name(scene, key)]
                else:
                    texts = list(alts) or [""]
                parsed = json.loads(scene)
            except (ImageInputError, ValueError) as error:
                skipped += 1
                logger.warning("clip: skipped %s", error)
                continue
            images.append(rgb)
            captions.append(texts)
            scenes.append(parsed)
            keys.append(key)
        if images:
            pixels.append(image_processor(images=images, return_tensors="pt")["pixel_values"])
    if not captions:
        raise ValueError(f"no readable {split!r} records under {root}")
    if skipped:
        logger.warning("clip: %d unreadable %s records skipped", skipped, split)
    return torch.cat(pixels), captions, scenes, keys


def _batches(pixels: torch.Tensor, captions: list[list[str]], tokenizer, batch_size: int, seed: int,
             synthetic: list[str | None] | None = None, synthetic_share: float = 0.0):
    """Endless shuffled batches; each image paired with one of its captions drawn at random, or, with
    probability `synthetic_share`, with its synthetic caption (MetaCLIP's mix of alt-texts and re-captions)."""
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(pixels), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            texts = []
            for i in index.tolist():
                use_synthetic = synthetic is not None and synthetic[i] is not None and rng.random() < synthetic_share
                texts.append(synthetic[i] if use_synthetic else rng.choice(captions[i]))
            tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            yield {"pixel_values": pixels[index], **tokens, "return_loss": True}


@torch.no_grad()
def encode_clip_images(model, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised projected image embeddings."""
    model.eval()
    out = [model.get_image_features(pixel_values=pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)]
    return torch.nn.functional.normalize(torch.cat([_pooled(o) for o in out]), dim=-1)


@torch.no_grad()
def _encode_texts(model, tokenizer, texts: list[str], batch_size: int = 512) -> torch.Tensor:
    model.eval()
    out = []
    for i in range(0, len(texts), batch_size):
        tokens = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, return_tensors="pt")
        out.append(_pooled(model.get_text_features(**tokens)))
    return torch.nn.functional.normalize(torch.cat(out), dim=-1)


def _pooled(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@torch.no_grad()
def evaluate_clip(model, tokenizer, pixels: torch.Tensor, captions: list[list[str]], scenes: list[dict] | None = None,
                  held_out: tuple[str, ...] = (), per_example: bool = False):
    """Retrieval and zero-shot classification on a held-out split.

    - recall_at_1: each image against the name-free dense captions of ALL images of the split (one
      per image, N-way; chance 1/N); a hit is the image's own caption. text_recall_at_1: each dense caption
      against all images.
    - recall_at_1_short: each image against all 5N short captions; a hit is a caption whose text is one of
      the image's own five (identical texts of other images count too, they describe it equally well).
    - zero-shot object accuracy on one-object images: "a {colour} {shape}" over all colour x shape
      prompts; colour, shape and both correct (chance 1/11, 1/7, 1/77); zero_shot_held_out_acc: on the
      one-object images showing a `held_out` concept, whether the predicted attribute of that kind is right.
    With `per_example`, the result also has "per_example": each metric as a list over images (None where an
    image does not count), for bootstrap intervals.
    """
    from hf_captioners.toyworld import COLORS, SHAPES

    n = len(captions)
    images = encode_clip_images(model, pixels)
    dense = [c[-1] for c in captions]
    dense_features = _encode_texts(model, tokenizer, dense)
    sims = images @ dense_features.T
    own = torch.arange(n)
    rows: dict[str, list] = {
        "recall_at_1": (sims.argmax(1) == own).tolist(),
        "text_recall_at_1": (sims.argmax(0) == own).tolist(),
    }
    short = [c for caps in captions for c in caps[:-1]]
    if short:
        owner_texts = [set(caps[:-1]) for caps in captions]
        best = (images @ _encode_texts(model, tokenizer, short).T).argmax(1).tolist()
        rows["recall_at_1_short"] = [short[j] in owner_texts[i] for i, j in enumerate(best)]
    if scenes is not None:
        pairs = [(c, s) for c in COLORS for s in SHAPES]
        prompts = _encode_texts(model, tokenizer, [f"a {c} {s}" for c, s in pairs])
        guesses = (images @ prompts.T).argmax(1).tolist()
        color, shape, both, held = ([None] * n for _ in range(4))
        for i, scene in enumerate(scenes):
            if len(scene["objects"]) != 1:
                continue
            truth, guess = scene["objects"][0], pairs[guesses[i]]
            color[i], shape[i] = guess[0] == truth["color"], guess[1] == truth["shape"]
            both[i] = color[i] and shape[i]
            if truth["color"] in held_out:
                held[i] = color[i]
            elif truth["shape"] in held_out:
                held[i] = shape[i]
        rows.update(zero_shot_color_acc=color, zero_shot_shape_acc=shape, zero_shot_object_acc=both)
        if held_out:
            rows["zero_shot_held_out_acc"] = held
    metrics: dict = {}
    for name, values in rows.items():
        counted = [float(v) for v in values if v is not None]
        if counted:
            metrics[name] = round(float(np.mean(counted)), 4)
    metrics["chance_dense"] = round(1.0 / n, 6)
    if scenes is not None:
        metrics["zero_shot_images"] = sum(v is not None for v in rows["zero_shot_object_acc"])
        if held_out:
            metrics["zero_shot_held_out_images"] = sum(v is not None for v in rows["zero_shot_held_out_acc"])
    if per_example:
        metrics["per_example"] = {k: [None if v is None else float(v) for v in values] for k, values in rows.items()}
    return metrics


def pretrain_clip(
    toyworld_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    config=None,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float = 2e-3,
    seed: int = 0,
    fast: bool = False,
    limit: int | None = None,
    eval_limit: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    train_split: str = "backbone",
    eval_split: str = "eval",
    text_source: str = "captions",
    synthetic: dict[str, str] | None = None,
    synthetic_share: float = 0.0,
) -> dict:
    """Pretrain a tiny CLIP on `train_split` (the backbone split), evaluate on `eval_split`, save to `out_dir`.

    `text_source` picks the training texts ("captions" or the raw "alt_texts"); `synthetic` ({record key:
    caption}, e.g. Altogether's re-captions of the same images) replaces them with probability
    `synthetic_share` per drawn pair (1.0: re-captions only).

    `out_dir` gets the model, the CLIP tokenizer (open_clip's vocabulary) and the image processor, so
    `CLIPModel.from_pretrained` + `CLIPProcessor.from_pretrained` (or AutoModel/AutoTokenizer) load it.
    `config`: a `CLIPConfig`, or a dict of `tiny_clip_config` arguments. Returns the metrics (also written to
    `out_dir/pretrain_metrics.json`).
    """
    from transformers import CLIPModel, CLIPProcessor

    from hf_captioners.convert.clip_tokenizer import build_clip_tokenizer
    from hf_captioners.convert.open_clip_to_hf import openai_clip_image_processor

    with PretrainRun(RECIPES["clip"], out_dir, seed, fast, steps, batch_size, limit, eval_limit, threads, lr) as run:
        config = tiny_clip_config(**(config or {})) if config is None or isinstance(config, dict) else config
        image_size = config.vision_config.image_size
        tokenizer = build_clip_tokenizer(context_length=config.text_config.max_position_embeddings)
        image_processor = openai_clip_image_processor(image_size)
        if not 0.0 <= synthetic_share <= 1.0:
            raise ValueError(f"synthetic_share must be in [0, 1], got {synthetic_share}")
        pixels, captions, _, keys = _load_split(toyworld_root, train_split, run.limit, image_processor, progress, text_source)
        per_image = None
        if synthetic is not None:
            per_image = [synthetic.get(k) for k in keys]
            missing = sum(c is None for c in per_image)
            if missing:
                logger.warning("clip: %d of %d images have no synthetic caption; they keep their own texts",
                               missing, len(keys))
        model = CLIPModel(config)
        losses = run.train(model, _batches(pixels, captions, tokenizer, min(run.batch_size, len(pixels)), seed, per_image,
                                           synthetic_share), progress)
        eval_pixels, eval_captions, scenes, _ = _load_split(toyworld_root, eval_split, run.eval_limit, image_processor, False)
        metrics = evaluate_clip(model, tokenizer, eval_pixels, eval_captions, scenes)
        model.save_pretrained(run.out)
        CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(run.out)
    return run.finish(
        model, losses, metrics, train_split=train_split, eval_split=eval_split, text_source=text_source,
        synthetic_share=synthetic_share if synthetic is not None else 0.0, train_images=len(pixels),
        eval_images=len(eval_pixels),
    )
