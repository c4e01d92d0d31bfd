"""A graph of jobs on a few single-threaded processes: how the toy-world reproduction fills a small machine."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

__all__ = ["Job", "run_jobs"]


@dataclass(frozen=True)
class Job:
    """One unit of the run: `func(*args)` in a worker process, started once the jobs in `after` are done.
    With `uses`, those jobs' results come in as the keyword `inputs` ({name: result})."""

    name: str
    func: Callable
    args: tuple = ()
    after: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()


def _timed(func: Callable, args: tuple, kwargs: dict) -> tuple[object, float]:
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    return func(*args, **kwargs), round(time.perf_counter() - started, 1)


def run_jobs(jobs: list[Job], workers: int = 2, progress: bool = True) -> tuple[dict, dict]:
    """Run a graph of jobs on `workers` single-threaded processes; (results by name, seconds by name).

    The list order is the priority among ready jobs, so the longest chain goes first and the cores never wait
    on a stage barrier. Two single-threaded processes use a 2-core machine far better than one two-threaded
    process, whose threads mostly wait on each other at these model sizes. The first failure stops the run."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm.auto import tqdm

    # glibc hands big freed blocks back to the kernel, and every training step then faults its tensors in
    # again (millions of page faults per run); keeping them in the heap saves about 5% of every job
    for variable, value in (("MALLOC_MMAP_THRESHOLD_", "33554432"), ("MALLOC_TRIM_THRESHOLD_", "4294967296")):
        os.environ.setdefault(variable, value)
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"job names repeat: {names}")
    for job in jobs:
        unknown = set(job.after + job.uses) - set(names)
        if unknown:
            raise ValueError(f"job {job.name} waits on unknown jobs {sorted(unknown)}")
    results, seconds, running = {}, {}, {}
    waiting = list(jobs)
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=not progress)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        while waiting or running:
            for job in [j for j in waiting if all(d in results for d in j.after + j.uses)][: workers - len(running)]:
                kwargs = {"inputs": {d: results[d] for d in job.uses}} if job.uses else {}
                running[pool.submit(_timed, job.func, job.args, kwargs)] = job.name
                waiting.remove(job)
            if not running:
                raise ValueError(f"jobs that can never start: {[j.name for j in waiting]}")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    results[name], seconds[name] = future.result()
                except BaseException as error:
                    for other in running:
                        other.cancel()
                    raise RuntimeError(f"job {name} failed: {error}") from error
                logger.info("job %s done in %.0fs", name, seconds[name])
                bar.set_postfix_str(name)
                bar.update()
    bar.close()
    return results, seconds
