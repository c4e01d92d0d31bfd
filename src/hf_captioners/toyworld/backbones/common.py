"""What the three pretraining recipes share: their sizes as data (`RECIPES`), the run skeleton (`PretrainRun`:
thread and seed control, timing, the common metrics, the metrics file), toy-world text and one training loop."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_THREADS", "RECIPES", "PretrainRun", "Recipe", "caption_without_name", "loss_summary",
           "num_threads", "split_texts", "train_loop"]

DEFAULT_THREADS = 1


@dataclass(frozen=True)
class Recipe:
    """A backbone's pretraining sizes: the full run and its `fast` smoke version, and its optimizer settings."""

    name: str
    steps: int
    fast_steps: int
    batch_size: int
    fast_batch_size: int
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 50


RECIPES = {
    "clip": Recipe("clip", steps=400, fast_steps=30, batch_size=128, fast_batch_size=64, weight_decay=0.1),
    "lm": Recipe("causal-lm", steps=500, fast_steps=40, batch_size=64, fast_batch_size=32, weight_decay=0.1),
    "bart": Recipe("bart", steps=600, fast_steps=40, batch_size=64, fast_batch_size=32, weight_decay=0.01),
}


class PretrainRun:
    """One recipe's run, used as `with PretrainRun(...) as run:` around the recipe's own body.

    It resolves the sizes (explicit values, else the recipe's full or fast ones; `fast` also caps the texts
    read), holds the thread count and the seed for the body, times the run, trains through `train_loop`, and
    `finish` adds the metrics every recipe reports and writes `out_dir/pretrain_metrics.json`."""

    def __init__(self, recipe: Recipe, out_dir, seed: int = 0, fast: bool = False, steps: int | None = None,
                 batch_size: int | None = None, limit: int | None = None, eval_limit: int | None = None,
                 threads: int | None = None, lr: float | None = None):
        self.recipe, self.out, self.seed, self.threads = recipe, Path(out_dir), seed, threads
        self.steps = steps if steps is not None else (recipe.fast_steps if fast else recipe.steps)
        self.batch_size = batch_size or (recipe.fast_batch_size if fast else recipe.batch_size)
        self.limit = limit if limit is not None else (1000 if fast else None)
        self.eval_limit = eval_limit if eval_limit is not None else (200 if fast else None)
        self.lr = lr if lr is not None else recipe.lr
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        self.train_seconds = 0.0
        self._threads = num_threads(threads)

    def __enter__(self) -> PretrainRun:
        from transformers import set_seed

        self._threads.__enter__()
        set_seed(self.seed)
        return self

    def __exit__(self, *exc) -> None:
        self._threads.__exit__(*exc)

    def train(self, model: torch.nn.Module, batches: Iterator[dict], progress: bool = True) -> list[float]:
        losses = train_loop(model, batches, self.steps, self.lr, warmup=self.recipe.warmup,
                            weight_decay=self.recipe.weight_decay, desc=self.recipe.name, progress=progress)
        self.train_seconds = time.perf_counter() - self.start
        return losses

    def finish(self, model: torch.nn.Module, losses: list[float], metrics: dict, **fields) -> dict:
        from hf_captioners.io_utils import atomic_write_json

        metrics.update(
            loss_summary(losses), steps=self.steps, batch_size=self.batch_size, **fields,
            parameters=sum(p.numel() for p in model.parameters()), train_seconds=round(self.train_seconds, 1),
            seconds=round(time.perf_counter() - self.start, 1),
            cpu_seconds=round(time.process_time() - self.cpu_start, 1), threads=self.threads or DEFAULT_THREADS,
        )
        atomic_write_json(self.out / "pretrain_metrics.json", metrics, indent=1)
        logger.info("%s: %s", self.recipe.name, {k: v for k, v in metrics.items() if k != "example"})
        return metrics


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

    The toy recipes' fixed number of steps over in-memory batches, on one process: the example scripts'
    Accelerator loop (`training/loop.py`) is for datasets, resumable checkpoints and many processes. Both
    take their weight-decay groups from `weight_decay_groups`.
    """
    from transformers import get_cosine_schedule_with_warmup

    from hf_captioners.training.loop import weight_decay_groups

    groups = weight_decay_groups(model, weight_decay)
    # the fused kernel updates all parameters in one pass: 10-15% of a toy CLIP step on a CPU core
    fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=fused or None)
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
