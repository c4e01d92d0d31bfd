"""What the three pretraining recipes share: toy-world text, thread and seed control, one training loop."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_THREADS", "caption_without_name", "loss_summary", "num_threads", "split_texts", "train_loop"]

DEFAULT_THREADS = 1


@contextlib.contextmanager
def num_threads(threads: int | None):
    """Run with `threads` intra-op threads (default 1) and restore afterwards.

    One thread by default: these models are so small that a second thread gains little, and on the shared
    2-core machine two threads tripled the CPU time (spin-waiting) while other jobs ran.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads or DEFAULT_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def caption_without_name(scene_json: str, key: str = "?") -> str:
    """The dense caption rebuilt from the scene without the name: names are never drawn, so an image
    encoder must not be taught them."""
    from hf_captioners.toyworld import Scene, SceneObject, dense_caption

    try:
        scene = json.loads(scene_json)
        objects = [SceneObject(**o) for o in scene.pop("objects")]
        return dense_caption(Scene(objects=objects, **scene), with_name=False)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"toy-world record {key}: unreadable scene ({error})") from error


def split_texts(root: str | os.PathLike, split: str, fields: tuple[str, ...], limit: int | None = None) -> list[str]:
    """Non-empty texts of `fields` of one split: "alt_texts", "caption", "captions", "caption_no_name", or
    "alt_then_caption" (a web-page-like document: the alt-text, then the dense caption that restates it)."""
    from hf_captioners.toyworld import load_hf_split

    table = load_hf_split(Path(root), split).remove_columns(["image"])
    if limit is not None:
        table = table.select(range(min(limit, len(table))))
    texts: list[str] = []
    for row in table:
        for field in fields:
            if field == "caption_no_name":
                value = caption_without_name(row["scene"], row["key"])
            elif field == "alt_then_caption":
                value = f"{row['alt_text']}\n{row['caption']}" if row["alt_text"].strip() else ""
            else:
                value = row[field]
            texts.extend(t for t in ([value] if isinstance(value, str) else value) if t and t.strip())
    return texts


def train_loop(
    model: torch.nn.Module,
    batches: Iterator[dict],
    steps: int,
    lr: float,
    warmup: int,
    weight_decay: float = 0.01,
    desc: str = "train",
    progress: bool = True,
    loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor] | None = None,
) -> list[float]:
    """AdamW with linear warm-up and cosine decay, gradient clipping at 1; returns the loss of every step.

    No weight decay on biases, norms and embeddings' 1-d parameters, as in the papers' recipes.
    """
    from transformers import get_cosine_schedule_with_warmup

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    # the fused kernel updates all parameters in one pass: 10-15% of a toy CLIP step on a CPU core
    fused = all(p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=fused or None,
    )
    schedule = get_cosine_schedule_with_warmup(optimizer, min(warmup, max(steps // 5, 1)), steps)
    model.train()
    losses: list[float] = []
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0)
    for step in bar:
        batch = next(batches)
        loss = loss_fn(model, batch) if loss_fn is not None else model(**batch).loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 20 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    logger.info("%s: %d steps, loss %.3f -> %.3f", desc, steps, _mean(losses[:10]), _mean(losses[-10:]))
    return losses


def _mean(values: list[float]) -> float:
    return sum(values) / max(len(values), 1)


def loss_summary(losses: list[float]) -> dict:
    """First and last loss averaged over 10 steps, so a few noisy steps do not decide "it learned"."""
    window = max(1, min(10, len(losses) // 3))
    return {"loss_start": round(_mean(losses[:window]), 4), "loss_end": round(_mean(losses[-window:]), 4)}
