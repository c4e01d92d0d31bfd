"""What `make bench` summarises: each benchmark records its headline figures with `record(...)`; `python -m
benchmarks` collects them (through the file named by BENCH_RESULTS) into one table at the end."""

from __future__ import annotations

import json
import os


def record(figure: str, value: float, target: str | None = None, met: bool | None = None, unit: str = "") -> None:
    """One row of the summary: the measured `value`, the target it is judged against (text) and whether it is met."""
    line = {"figure": figure, "value": value, "unit": unit, "target": target, "met": met}
    print(f"summary: {figure} = {value:.4g}{unit}" + (f" (target {target}: {'met' if met else 'NOT met'})" if target else ""))
    path = os.environ.get("BENCH_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
