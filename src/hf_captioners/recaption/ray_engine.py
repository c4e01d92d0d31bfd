"""Re-captioning shards with Ray: a pool of model-holding actors, shards handed out one at a time as actors
free up, so that a slow shard (a straggler) holds only its own actor, never the others.

The shard stays the unit of work and of commit: each actor runs `recaption.caption_shard` (read, preprocess,
generate and write in the actor's own process), whose `{shard}.json` is renamed into place last, exactly as the
local engine does. So a shard is exactly once however often it is handed out, finished shards are skipped on
restart, and the outputs equal the local engine's byte for byte (same batches, greedy decoding).

An actor whose process dies (kill -9, OOM, a lost node) is restarted by Ray (`max_restarts`), and the shard it
held is handed out again, to whichever actor is free first, at most `max_retries` times; each such hand-out is a
retry in the summary. A shard that still fails is left without output (the next run retries it) and counted lost.

The shards and the output folder must be at the same path on every node (a shared file system).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hf_captioners.altogether.image_utils import DEFAULT_MAX_PIXELS
from hf_captioners.recaption.engine import (
    RecaptionSummary,
    ShardCaptioner,
    _remove_stale_temporaries,
    caption_shard,
    check_outputs,
    shard_outputs,
)

logger = logging.getLogger(__name__)

__all__ = ["LoadCaptioner", "RayEngineError", "RaySummary", "caption_shards_ray", "check_address", "start_ray"]


class RayEngineError(RuntimeError):
    """The Ray run cannot go on at all (no actor could start): a setup problem, not a failed shard."""


@dataclass
class RaySummary(RecaptionSummary):
    """`startup_seconds`: until the first actor had loaded its captioner; `retries`: shards handed out again
    after their actor died or raised; `shards_lost`: shards that failed `1 + max_retries` times and were
    left without output, for the next run."""

    workers: int = 0
    startup_seconds: float = 0.0
    retries: int = 0
    shards_lost: int = 0
    lost: list[str] = field(default_factory=list)

    def line(self) -> str:
        lost = (f", {self.shards_lost} shards lost (their worker died or raised on every try; no output, "
                f"retried by the next run)") if self.shards_lost else ""
        retries = "retry" if self.retries == 1 else "retries"
        return f"{super().line()}; ray: {self.workers} workers, {self.retries} {retries}{lost}"


@dataclass
class LoadCaptioner:
    """A picklable recipe for `captioners.load_captioner`, run once in each actor (the model never travels)."""

    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, device: str | None) -> ShardCaptioner:
        from hf_captioners.recaption.adapters import load_captioner

        kwargs = dict(self.kwargs)
        if kwargs.get("device_map") is None:
            kwargs["device"] = device
        return load_captioner(self.model, **kwargs)


class _ShardWorker:
    """A Ray actor: loads the captioner once, then captions whole shards, one call each."""

    def __init__(self, factory: Callable[..., ShardCaptioner], options: dict[str, Any], num_cpus: float,
                 num_gpus: float):
        import torch

        if num_cpus >= 1:
            torch.set_num_threads(int(num_cpus))
        self.captioner = factory("cuda" if num_gpus > 0 else "cpu")
        self.options = options

    def ready(self) -> int:
        return os.getpid()

    def caption(self, shard: str, out_dir: str, remove_temporaries: bool) -> RecaptionSummary:
        return caption_shard(self.captioner, shard, out_dir, remove_temporaries=remove_temporaries, **self.options)


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at `host:port` (ray.init retries a dead address for a
    long time). `auto` and `ray://` addresses are left to Ray."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not host:port: pass the head node's GCS address "
                         f"(as printed by `ray start --head`, e.g. 10.0.0.1:6379) or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConnectionError(f"no Ray cluster answers at {address!r} ({error.strerror or error}): start one with "
                              f"`ray start --head` there, or leave --ray-address out for a local cluster") from error


def start_ray(address: str | None = None, num_cpus: int | None = None, temp_dir: str | None = None,
              **init_kwargs) -> bool:
    """Connect to the cluster at `address`, or start a local one on loopback with `num_cpus`; return whether this
    call started Ray (and so should shut it down). An already initialised Ray (the caller's) is used as it is."""
    import ray

    if ray.is_initialized():
        return False
    if address is not None:
        check_address(address)
        ray.init(address=address, **init_kwargs)
    else:
        kwargs = {"num_cpus": num_cpus, "include_dashboard": False, "_node_ip_address": "127.0.0.1"}
        if temp_dir is not None:
            kwargs["_temp_dir"] = temp_dir
        ray.init(**kwargs | init_kwargs)
    return True


def caption_shards_ray(
    factory: Callable[..., ShardCaptioner],
    shards: list[str],
    out_dir: str | os.PathLike,
    num_workers: int | None = None,
    num_cpus_per_worker: float = 1,
    num_gpus_per_worker: float = 0,
    max_retries: int = 3,
    batch_size: int = 32,
    extra_formats: tuple[str, ...] = (),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    accept_partial: bool = False,
    progress: bool = True,
) -> RaySummary:
    """Caption `shards` into `out_dir` over `num_workers` actors of the Ray cluster this process is connected to
    (`start_ray`); `factory(device)` builds each actor's captioner. Default `num_workers`: as many as the
    cluster's resources hold now."""
    import ray
    from ray.exceptions import RayActorError, RayError
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = check_outputs(shards, out_dir)
    summary = RaySummary()
    todo = [shard for shard in shards if not shard_outputs(out, shard)["json"].exists()]
    summary.shards_skipped = len(shards) - len(todo)
    if summary.shards_skipped:
        logger.info("skipping %d finished shards", summary.shards_skipped)
    if not todo:
        summary.seconds = time.perf_counter() - start
        return summary
    _remove_stale_temporaries(out, todo)

    fit = _workers_that_fit(ray.cluster_resources(), num_cpus_per_worker, num_gpus_per_worker)
    if fit == 0:
        raise RayEngineError(f"the Ray cluster ({_resources_text(ray.cluster_resources())}) cannot hold one worker "
                             f"of {num_cpus_per_worker} CPUs and {num_gpus_per_worker} GPUs: ask for less per worker")
    num_workers = min(num_workers or fit, len(todo))
    if num_workers > fit:
        logger.warning("the cluster holds %d of the %d workers now; the others start when resources appear", fit,
                       num_workers)
    summary.workers = num_workers
    options = {"batch_size": batch_size, "extra_formats": tuple(extra_formats), "max_pixels": max_pixels,
               "accept_partial": accept_partial}
    actor_class = ray.remote(_ShardWorker).options(
        num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker, max_restarts=max_retries, max_task_retries=0)
    actors = [actor_class.remote(factory, options, num_cpus_per_worker, num_gpus_per_worker)
              for _ in range(num_workers)]
    starting = {actor.ready.remote(): actor for actor in actors}
    running: dict[Any, tuple[str, Any]] = {}
    queue = deque(todo)
    tries = dict.fromkeys(todo, 0)
    idle: list = []
    start_errors: list[str] = []
    bar = tqdm(total=len(todo), desc="caption-shards ray", unit="shard", disable=not progress)
    try:
        while queue or running:
            while idle and queue:
                shard = queue.popleft()
                actor = idle.pop()
                running[actor.caption.remote(shard, str(out), tries[shard] > 0)] = (shard, actor)
            if not running and not starting:
                cause = f"the last could not start: {start_errors[-1]}" if start_errors else "all of them died"
                raise RayEngineError(f"no Ray worker is left to caption {len(queue)} shards ({cause}): check that "
                                     f"every node can load the captioner and has the resources asked per worker")
            [ref], _ = ray.wait([*running, *starting], num_returns=1)
            if ref in starting:
                actor = starting.pop(ref)
                try:
                    logger.debug("ray worker up (pid %d)", ray.get(ref))
                    idle.append(actor)
                    summary.startup_seconds = summary.startup_seconds or time.perf_counter() - start
                except RayError as error:
                    logger.error("a ray worker could not start: %s", _first_line(error))
                    start_errors.append(_first_line(error))
                continue
            shard, actor = running.pop(ref)
            try:
                _add(summary, ray.get(ref))
                idle.append(actor)
                bar.update(1)
                continue
            except RayActorError as error:
                why = f"its worker died ({_first_line(error)})"
                starting[actor.ready.remote()] = actor  # back in the pool once Ray has restarted it
            except RayError as error:
                why = f"its worker raised {_first_line(error)}"
                idle.append(actor)
            tries[shard] += 1
            if tries[shard] <= max_retries:
                summary.retries += 1
                logger.warning("%s: %s; handing it out again (retry %d of %d)", shard, why, tries[shard], max_retries)
                queue.appendleft(shard)
            else:
                logger.error("%s: %s on each of its %d tries; left without output for the next run", shard, why,
                             tries[shard])
                summary.shards_lost += 1
                summary.lost.append(shard)
                bar.update(1)
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor, no_restart=True)
    summary.seconds = time.perf_counter() - start
    return summary


def _add(summary: RaySummary, part: RecaptionSummary) -> None:
    for name in ("shards_done", "shards_skipped", "shards_failed", "shards_partial", "records", "captioned", "errors"):
        setattr(summary, name, getattr(summary, name) + getattr(part, name))


def _workers_that_fit(resources: dict[str, float], cpus: float, gpus: float) -> int:
    limits = [resources.get("CPU", 0) / cpus] if cpus else []
    if gpus:
        limits.append(resources.get("GPU", 0) / gpus)
    return int(min(limits)) if limits else 1


def _resources_text(resources: dict[str, float]) -> str:
    return f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)

