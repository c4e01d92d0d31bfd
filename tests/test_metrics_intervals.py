"""Bootstrap intervals: checked against the normal approximation of a proportion and a paired mean."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_captioners.metrics.intervals import bootstrap_difference, bootstrap_mean


def test_interval_of_a_proportion_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    hits = (rng.random(2000) < 0.3).tolist()
    p = float(np.mean(hits))
    half = 1.96 * math.sqrt(p * (1 - p) / len(hits))  # Wald interval, accurate at n = 2000
    est = bootstrap_mean([hits], replicates=4000)
    assert est["value"] == pytest.approx(p)
    assert est["low"] == pytest.approx(p - half, abs=0.004) and est["high"] == pytest.approx(p + half, abs=0.004)
    assert est["n"] == 2000 and est["seeds"] == 1 and est["std"] is None


def test_examples_marked_none_do_not_count():
    est = bootstrap_mean([[1.0, None, 0.0, None, 1.0, 1.0]])
    assert est["value"] == pytest.approx(0.75) and est["n"] == 4
    assert 0.0 <= est["low"] <= est["value"] <= est["high"] <= 1.0
    assert bootstrap_mean([[None, None]])["value"] is None


def test_seeds_average_and_report_their_spread():
    est = bootstrap_mean([[1, 1, 1, 0], [0, 0, 1, 0], [1, 0, 1, 0]])
    assert est["value"] == pytest.approx((0.75 + 0.25 + 0.5) / 3)
    assert est["std"] == pytest.approx(0.25) and est["seeds"] == 3


def test_paired_difference_uses_the_same_images_for_both_systems():
    rng = np.random.default_rng(2)
    base = rng.normal(size=1000)
    a, b = (base + 0.1).tolist(), base.tolist()  # identical but for a constant: a paired difference has no spread
    est = bootstrap_difference([a], [b])
    assert est["value"] == pytest.approx(0.1) and est["high"] - est["low"] < 1e-9
    noise = rng.normal(scale=1.0, size=1000)
    c = (base + noise).tolist()
    diff = bootstrap_difference([c], [b], replicates=4000)
    half = 1.96 * float(np.std(noise, ddof=1)) / math.sqrt(1000)  # the paired t interval
    assert diff["low"] == pytest.approx(diff["value"] - half, abs=0.01)
    assert diff["high"] == pytest.approx(diff["value"] + half, abs=0.01)
    with pytest.raises(ValueError, match="same images"):
        bootstrap_difference([a], [b[:10]])
