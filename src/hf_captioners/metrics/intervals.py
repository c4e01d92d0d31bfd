"""Bootstrap intervals over images, for one run or for the mean of several seeded runs.

A metric is given per example as a list aligned with the eval images, `None` where the example does not
count (an image without a wrong alt-text attribute for "errors corrected", without a name for "name
retention"). Its value is the mean of the examples that count, so a resample of images re-weights exactly
the examples that decide the number. Corpus-level CIDEr-D is the mean of its per-image scores with the
document frequencies of the whole reference set held fixed; resampling those per-image scores is the usual
approximation.

Several seeds (each its own toy world and its own trained models) are combined by resampling the images of
every seed independently and averaging the seeds' values: the interval is that of the seed mean, given the
seeds; the seeds' own spread is reported beside it (`std` over seeds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Estimate", "bootstrap_difference", "bootstrap_mean", "DEFAULT_REPLICATES"]

DEFAULT_REPLICATES = 2000

PerExample = Sequence[float | bool | None]


class Estimate(dict):
    """{"value", "low", "high", "n", "seeds", "std"}: a point estimate with its 95% interval."""

    def text(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        if self["value"] is None:
            return "–"
        fmt = f"{{:.{digits}f}}"
        value, low, high = (fmt.format(self[k] * scale) for k in ("value", "low", "high"))
        return f"{value}{unit} [{low}, {high}]"


def _as_arrays(runs: Sequence[PerExample]) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for run in runs:
        values = np.array([np.nan if v is None else float(v) for v in run], dtype=np.float64)
        out.append((np.nan_to_num(values), ~np.isnan(values)))
    return out


def _replicates(arrays, replicates: int, seed: int) -> np.ndarray:
    """Seed-mean of the metric for each bootstrap replicate (NaN where a replicate drew no example that counts)."""
    rng = np.random.default_rng(seed)
    per_seed = []
    for values, counts in arrays:
        n = len(values)
        if n == 0:
            per_seed.append(np.full(replicates, np.nan))
            continue
        draws = rng.integers(0, n, size=(replicates, n))
        total, number = values[draws].sum(1), counts[draws].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_seed.append(np.where(number > 0, total / np.maximum(number, 1), np.nan))
    return np.mean(per_seed, axis=0)


def _summarise(arrays, point_per_seed: list[float | None], replicates: int, seed: int, confidence: float) -> Estimate:
    kept = [p for p in point_per_seed if p is not None]
    if len(kept) < len(point_per_seed) or not kept:
        return Estimate(value=None, low=None, high=None, n=sum(int(c.sum()) for _, c in arrays),
                        seeds=len(point_per_seed), std=None)
    draws = _replicates(arrays, replicates, seed)
    draws = draws[~np.isnan(draws)]
    tail = (1.0 - confidence) / 2 * 100
    low, high = (float(np.percentile(draws, q)) for q in (tail, 100 - tail)) if len(draws) else (None, None)
    return Estimate(value=float(np.mean(kept)), low=low, high=high, n=sum(int(c.sum()) for _, c in arrays),
                    seeds=len(kept), std=float(np.std(kept, ddof=1)) if len(kept) > 1 else None)


def _point(values: np.ndarray, counts: np.ndarray) -> float | None:
    return float(values[counts].mean()) if counts.any() else None


def bootstrap_mean(runs: Sequence[PerExample], replicates: int = DEFAULT_REPLICATES, seed: int = 0,
                   confidence: float = 0.95) -> Estimate:
    """The mean of a per-example metric (averaged over runs = seeds) with a percentile bootstrap interval.

    `runs`: one per-example list per seed (a single run is `[per_example]`)."""
    arrays = _as_arrays(runs)
    return _summarise(arrays, [_point(v, c) for v, c in arrays], replicates, seed, confidence)


def bootstrap_difference(runs_a: Sequence[PerExample], runs_b: Sequence[PerExample],
                         replicates: int = DEFAULT_REPLICATES, seed: int = 0, confidence: float = 0.95) -> Estimate:
    """A − B for two systems scored on the same images (paired: each replicate draws the same images for both).

    Each system's mean is taken over its own counting examples within the drawn images, so metrics that
    count on a subset (errors corrected) compare like with like."""
    if len(runs_a) != len(runs_b):
        raise ValueError(f"got {len(runs_a)} runs for A but {len(runs_b)} for B")
    rng = np.random.default_rng(seed)
    arrays_a, arrays_b = _as_arrays(runs_a), _as_arrays(runs_b)
    per_seed, points = [], []
    for (va, ca), (vb, cb) in zip(arrays_a, arrays_b):
        if len(va) != len(vb):
            raise ValueError(f"paired systems need the same images, got {len(va)} and {len(vb)}")
        pa, pb = _point(va, ca), _point(vb, cb)
        points.append(None if pa is None or pb is None else pa - pb)
        draws = rng.integers(0, len(va), size=(replicates, len(va)))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_a = va[draws].sum(1) / ca[draws].sum(1)
            mean_b = vb[draws].sum(1) / cb[draws].sum(1)
        per_seed.append(mean_a - mean_b)
    kept = [p for p in points if p is not None]
    n = sum(int((ca | cb).sum()) for (_, ca), (_, cb) in zip(arrays_a, arrays_b))
    if len(kept) < len(points) or not kept:
        return Estimate(value=None, low=None, high=None, n=n, seeds=len(points), std=None)
    draws = np.mean(per_seed, axis=0)
    draws = draws[np.isfinite(draws)]
    tail = (1.0 - confidence) / 2 * 100
    return Estimate(value=float(np.mean(kept)), low=float(np.percentile(draws, tail)),
                    high=float(np.percentile(draws, 100 - tail)), n=n, seeds=len(kept),
                    std=float(np.std(kept, ddof=1)) if len(kept) > 1 else None)
