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


def _point(values: np.ndarray, counts: np.ndarray) -> float | None:
    return float(values[counts].mean()) if counts.any() else None


def _resampled_means(values: np.ndarray, counts: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The metric's mean in each replicate (rows of `draws`: image indices); NaN where none counted."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return values[draws].sum(1) / counts[draws].sum(1)


def _estimate(points: list[float | None], replicate_means: list[np.ndarray], n: int, confidence: float) -> Estimate:
    """Seed mean of `points` with the percentile interval of the seed-averaged replicates."""
    if not points or any(p is None for p in points):
        return Estimate(value=None, low=None, high=None, n=n, seeds=len(points), std=None)
    draws = np.mean(replicate_means, axis=0)
    draws = draws[np.isfinite(draws)]
    tail = (1.0 - confidence) / 2 * 100
    low, high = (float(np.percentile(draws, q)) for q in (tail, 100 - tail)) if len(draws) else (None, None)
    return Estimate(value=float(np.mean(points)), low=low, high=high, n=n, seeds=len(points),
                    std=float(np.std(points, ddof=1)) if len(points) > 1 else None)


def bootstrap_mean(runs: Sequence[PerExample], replicates: int = DEFAULT_REPLICATES, seed: int = 0,
                   confidence: float = 0.95) -> Estimate:
    """The mean of a per-example metric (averaged over runs = seeds) with a percentile bootstrap interval.

    `runs`: one per-example list per seed (a single run is `[per_example]`)."""
    arrays = _as_arrays(runs)
    points = [_point(v, c) for v, c in arrays]
    n = sum(int(c.sum()) for _, c in arrays)
    if any(p is None for p in points):
        return _estimate(points, [], n, confidence)
    rng = np.random.default_rng(seed)
    means = [_resampled_means(v, c, rng.integers(0, len(v), size=(replicates, len(v)))) for v, c in arrays]
    return _estimate(points, means, n, confidence)


def bootstrap_difference(runs_a: Sequence[PerExample], runs_b: Sequence[PerExample],
                         replicates: int = DEFAULT_REPLICATES, seed: int = 0, confidence: float = 0.95) -> Estimate:
    """A − B for two systems scored on the same images (paired: each replicate draws the same images for both).

    Each system's mean is taken over its own counting examples within the drawn images, so metrics that
    count on a subset (errors corrected) compare like with like."""
    if len(runs_a) != len(runs_b):
        raise ValueError(f"got {len(runs_a)} runs for A but {len(runs_b)} for B")
    rng = np.random.default_rng(seed)
    arrays_a, arrays_b = _as_arrays(runs_a), _as_arrays(runs_b)
    differences, points = [], []
    for (va, ca), (vb, cb) in zip(arrays_a, arrays_b):
        if len(va) != len(vb):
            raise ValueError(f"paired systems need the same images, got {len(va)} and {len(vb)}")
        pa, pb = _point(va, ca), _point(vb, cb)
        points.append(None if pa is None or pb is None else pa - pb)
        draws = rng.integers(0, len(va), size=(replicates, len(va)))
        differences.append(_resampled_means(va, ca, draws) - _resampled_means(vb, cb, draws))
    n = sum(int((ca | cb).sum()) for (_, ca), (_, cb) in zip(arrays_a, arrays_b))
    return _estimate(points, differences, n, confidence)
