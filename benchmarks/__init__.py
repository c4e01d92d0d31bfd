"""Benchmarks: each `bench_*.py` prints measured numbers and ratios (speed targets live here, not in tests)."""
