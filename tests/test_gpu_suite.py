"""The GPU suite keeps working without a GPU: `--tiny` runs every row at toy shapes on the CPU and writes its report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.py"


def test_tiny_run_writes_one_row_per_path(tmp_path):
    out = tmp_path / "RESULTS.md"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false")
    result = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out)], capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1].startswith("gpu_suite: 6 rows on CPU")
    report = out.read_text()
    assert report.startswith("# GPU suite (toy shapes, CPU smoke run)")
    rows = [line for line in report.splitlines() if line.startswith("| Altogether") or line.startswith("| antarctic")]
    assert len(rows) == 6 and not any("Error" in row for row in rows), rows
    assert "same caption as the original for 3/3 images" in report  # batched = one image at a time


def test_without_a_gpu_the_real_run_refuses_in_one_line():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and "no GPU here" in result.stderr and "Traceback" not in result.stderr
