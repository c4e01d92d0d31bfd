"""The Accelerator training loop both example scripts share: optimizer groups, schedule, checkpoints with
exact resume, loss logging, and counting (not dying on) bad records.

Exact resume: `DataLoaderConfiguration(use_seedable_sampler=True)` makes the shuffling a function of
(seed, epoch); `save_state` stores model, optimizer, scheduler and RNG states; on resume the loop skips
the batches the checkpoint had already consumed. Per-example randomness (prompt choice, prompt dropout)
comes from RNGs seeded by (seed, epoch, example key), so it does not depend on where a run started.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from hf_captioners.io_utils import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "BadRecords",
    "TrainConfig",
    "add_train_arguments",
    "example_rng",
    "latest_checkpoint",
    "make_accelerator",
    "make_optimizer",
    "train_loop",
    "weight_decay_groups",
]

_NO_DECAY = re.compile(r"(bias|norm|ln_|layernorm|layer_norm|prefix_const)", re.IGNORECASE)


@dataclass
class TrainConfig:
    output_dir: str
    learning_rate: float = 2e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-6
    weight_decay: float = 0.2
    warmup_steps: int = 200
    lr_scheduler: str = "cosine"
    num_epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    checkpointing_steps: int | None = None
    resume_from_checkpoint: str | None = None
    seed: int = 0
    num_workers: int = 0
    report_to: str | None = None
    log_every: int = 10


def add_train_arguments(parser, **defaults) -> None:
    """The optimisation, checkpointing and logging flags both scripts share (defaults overridable)."""
    d = asdict(TrainConfig(output_dir="")) | defaults
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--learning_rate", type=float, default=d["learning_rate"])
    parser.add_argument("--adam_beta1", type=float, default=d["adam_beta1"])
    parser.add_argument("--adam_beta2", type=float, default=d["adam_beta2"])
    parser.add_argument("--adam_epsilon", type=float, default=d["adam_epsilon"])
    parser.add_argument("--weight_decay", type=float, default=d["weight_decay"])
    parser.add_argument("--warmup_steps", type=int, default=d["warmup_steps"])
    parser.add_argument("--lr_scheduler", default=d["lr_scheduler"], help="any transformers scheduler name")
    parser.add_argument("--num_epochs", type=int, default=d["num_epochs"])
    parser.add_argument("--max_steps", type=int, default=d["max_steps"], help="optimizer steps (overrides epochs)")
    parser.add_argument("--batch_size", type=int, default=d["batch_size"], help="per process")
    parser.add_argument("--gradient_accumulation_steps", type=int, default=d["gradient_accumulation_steps"])
    parser.add_argument("--max_grad_norm", type=float, default=d["max_grad_norm"])
    parser.add_argument("--checkpointing_steps", type=int, default=d["checkpointing_steps"])
    parser.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint folder, or 'latest'")
    parser.add_argument("--seed", type=int, default=d["seed"])
    parser.add_argument("--num_workers", type=int, default=d["num_workers"])
    parser.add_argument("--report_to", default=d["report_to"], help="accelerate tracker, e.g. tensorboard")
    parser.add_argument("--log_every", type=int, default=d["log_every"])
    parser.add_argument("--cpu", action="store_true", help="train on CPU even where a GPU is present")


def train_config_from(args) -> TrainConfig:
    names = TrainConfig.__dataclass_fields__
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def example_rng(seed: int, epoch: int, key) -> random.Random:
    return random.Random(f"{seed}:{epoch}:{key}")


class BadRecords:
    """Counts skipped records by reason; logs the first few of each reason with the record's key."""

    def __init__(self, log_first: int = 5):
        self.reasons: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.log_first = log_first

    def skip(self, key, reason: str) -> None:
        kind = reason.split(":", 1)[0]
        self.reasons[kind] += 1
        seen = self.examples.setdefault(kind, [])
        if len(seen) < self.log_first:
            seen.append(f"{key}: {reason}")
            logger.warning("skipping record %s: %s", key, reason)

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def summary(self) -> dict:
        return {"skipped": self.total, "by_reason": dict(self.reasons), "examples": self.examples}


def make_accelerator(cfg: TrainConfig, cpu: bool = False):
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import ProjectConfiguration, set_seed

    tracker = cfg.report_to
    if tracker == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            logger.warning("tensorboard is not installed; logging to the loss file only")
            tracker = None
    accelerator = Accelerator(
        cpu=cpu or not torch.cuda.is_available(),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        log_with=tracker,
        project_config=ProjectConfiguration(project_dir=cfg.output_dir, logging_dir=os.path.join(cfg.output_dir, "logs")),
    )
    set_seed(cfg.seed)
    return accelerator


def weight_decay_groups(model: torch.nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """The project's one weight-decay rule, for every optimizer it builds: decay on matrices only, none on
    biases, norms, other ndim < 2 parameters and ClipCap's learned `prefix_const`.

    `decay_all` decays every trainable parameter, as a plain `AdamW(model.parameters())` does (antarctic's
    LayerNorm tuning trains nothing but norms, and the original decayed them)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if not decay_all and (param.ndim < 2 or _NO_DECAY.search(name)) else decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, decay_all: bool = False) -> torch.optim.AdamW:
    """AdamW over `weight_decay_groups` with the config's learning rate, betas and epsilon."""
    return torch.optim.AdamW(weight_decay_groups(model, cfg.weight_decay, decay_all), lr=cfg.learning_rate,
                             betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    folder = Path(output_dir) / "checkpoints"
    found = [p for p in folder.glob("step_*") if (p / "trainer_state.json").exists()]
    return max(found, key=lambda p: int(p.name.split("_")[1])) if found else None


@dataclass
class LoopResult:
    steps: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    examples: int = 0


def train_loop(
    accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataloader: torch.utils.data.DataLoader,
    cfg: TrainConfig,
    compute_loss: Callable[[torch.nn.Module, dict], torch.Tensor],
    steps_per_epoch: int | None,
    set_epoch: Iterable[Callable[[int], None]] = (),
) -> LoopResult:
    """Train until `max_steps` or `num_epochs`; returns the loss of every optimizer step.

    `dataloader` must already be prepared; `steps_per_epoch` (optimizer steps) may be None for streams,
    which then need `max_steps`. `set_epoch` callbacks get the epoch before each pass (collators, datasets).
    """
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    if steps_per_epoch is None and cfg.max_steps is None:
        raise ValueError("a streaming dataset needs --max_steps")
    total_steps = cfg.max_steps or steps_per_epoch * cfg.num_epochs
    num_epochs = math.ceil(total_steps / steps_per_epoch) if steps_per_epoch else math.inf
    scheduler = get_scheduler(
        cfg.lr_scheduler, optimizer, num_warmup_steps=min(cfg.warmup_steps, total_steps), num_training_steps=total_steps
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    loss_file = Path(cfg.output_dir) / "losses.jsonl"
    result = LoopResult()

    start_step, resume_state = 0, {}
    resume = cfg.resume_from_checkpoint
    if resume == "latest":
        resume = latest_checkpoint(cfg.output_dir)
        if resume is None:
            logger.info("no checkpoint under %s: starting from scratch", cfg.output_dir)
    if resume:
        accelerator.load_state(str(resume))
        resume_state = json.loads((Path(resume) / "trainer_state.json").read_text())
        start_step = resume_state["step"]
        if loss_file.exists():
            kept = [json.loads(line) for line in loss_file.read_text().splitlines()]
            result.losses = [row["loss"] for row in kept if row["step"] <= start_step]
        logger.info("resumed from %s at step %d", resume, start_step)
    if accelerator.is_main_process:
        atomic_write_text(loss_file, "".join(json.dumps({"step": i + 1, "loss": v}) + "\n" for i, v in enumerate(result.losses)))
    accelerator.init_trackers("train", config={k: v for k, v in asdict(cfg).items() if isinstance(v, (int, float, str, bool))})

    step, epoch, batches_done = start_step, resume_state.get("epoch", 0), resume_state.get("batches_in_epoch", 0)
    bar = tqdm(total=total_steps, initial=step, desc="train", disable=not accelerator.is_local_main_process)
    started = time.perf_counter()
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    while step < total_steps and epoch < num_epochs:
        for callback in set_epoch:
            callback(epoch)
        if hasattr(dataloader, "set_epoch"):
            dataloader.set_epoch(epoch)
        running, micro = 0.0, 0
        for batch in _iterate_without_touching_rng(accelerator, dataloader, batches_done):
            with accelerator.accumulate(model):
                if batch:
                    loss = compute_loss(model, batch)
                    result.examples += _batch_size(batch)
                else:  # every record of this batch was bad: keep the ranks' collectives in step
                    loss = sum(p.sum() for p in trainable) * 0.0
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            batches_done += 1
            running += loss.detach().float()
            micro += 1
            if micro < cfg.gradient_accumulation_steps:
                continue
            step += 1
            step_loss = accelerator.reduce(running / micro, reduction="mean").item()
            running, micro = 0.0, 0
            result.losses.append(step_loss)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            accelerator.log({"train/loss": step_loss, "train/lr": scheduler.get_last_lr()[0]}, step=step)
            if accelerator.is_main_process:
                with open(loss_file, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"step": step, "loss": step_loss}) + "\n")
            if step % cfg.log_every == 0:
                logger.info("step %d/%d loss %.4f", step, total_steps, step_loss)
            if cfg.checkpointing_steps and step % cfg.checkpointing_steps == 0:
                save_checkpoint(accelerator, cfg.output_dir, {"step": step, "epoch": epoch, "batches_in_epoch": batches_done})
            if step >= total_steps:
                break
        else:
            epoch, batches_done = epoch + 1, 0
            continue
        break
    bar.close()
    accelerator.wait_for_everyone()
    result.steps = step
    result.seconds = time.perf_counter() - started
    return result


def save_checkpoint(accelerator, output_dir: str, state: dict) -> Path:
    """`save_state` into a temporary folder renamed into place, so a kill never leaves a torn checkpoint.

    `state` records where the data stream stood: step, epoch and batches consumed in that epoch."""
    final = Path(output_dir) / "checkpoints" / f"step_{state['step']}"
    staging = final.with_name(f".{final.name}.tmp")
    accelerator.save_state(str(staging))
    if accelerator.is_main_process:
        atomic_write_json(staging / "trainer_state.json", state)
        if final.exists():
            import shutil

            shutil.rmtree(final)
        os.replace(staging, final)
    accelerator.wait_for_everyone()
    return final


def _iterate_without_touching_rng(accelerator, dataloader, skip: int):
    """Yield the epoch's batches (after `skip` consumed ones) with the global RNG untouched by their start.

    Starting a loader (and a skipping one) draws seeds from the global RNG when its first batch is fetched;
    a resumed run starts one where an uninterrupted one does not, which would shift every later dropout mask.
    """
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    iterator = iter(accelerator.skip_first_batches(dataloader, skip) if skip else dataloader)
    first = next(iterator, None)
    torch.set_rng_state(cpu_state)
    if cuda_states is not None:
        torch.cuda.set_rng_state_all(cuda_states)
    if first is None:
        return
    yield first
    yield from iterator


def _batch_size(batch: dict) -> int:
    for value in batch.values():
        if hasattr(value, "shape"):
            return int(value.shape[0])
    return 0
