"""A tiny version of the README's demo command, end to end, in a subprocess (as `make demo` runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from PIL import Image


def test_tiny_demo_runs_every_stage_and_writes_the_report(tmp_path):
    out = tmp_path / "results"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result = subprocess.run([sys.executable, "-m", "hf_captioners.cli", "demo", "--scale", "tiny", "--out", str(out),
                             "--no-progress"], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().splitlines()[-1].startswith("demo: tiny run in")

    summary = json.loads((out / "results.json").read_text())
    assert set(summary["systems"]) == {"copy", "clipcap", "altogether", "antarctic_beam", "antarctic_sample", "antarctic_custom"}
    for metrics in summary["systems"].values():
        assert metrics["n"] == 16 and 0.0 <= metrics["cider_d"] <= 10.0
        assert "errors_corrected" in metrics and "held_out_recall" in metrics
    assert summary["systems"]["copy"]["name_retention"] == 1.0  # the alt-text keeps its own names, by definition
    assert set(summary["backbones"]) >= {"clip", "lm", "bart"}
    assert 0.0 <= summary["backbones"]["bart"]["table_copy_rate"] <= 1.0
    assert len(summary["claims"]) == 5 and all(isinstance(c["shown"], bool) for c in summary["claims"])
    assert summary["recaption"]["captioned"] == 16
    assert len(summary["pipeline_samples"]) == 3
    assert all(isinstance(s["antarctic image-to-text"], str) for s in summary["pipeline_samples"])

    table = (out / "results.md").read_text()
    assert table.count("\n| ") >= 7 and "Altogether (image + alt-text)" in table
    assert Image.open(out / "plot.png").size[0] > 800
    assert (out / "samples.html").read_text().count("<img") == 12
    for key in ("altogether", "clipcap", "antarctic"):
        assert (out / "runs" / key / "final" / "config.json").exists()


def _rows(**overrides):
    rows = {
        "copy": {"cider_d": 0.07, "name_retention": 1.0, "errors_corrected": 0.0},
        "clipcap": {"cider_d": 1.4, "name_retention": 0.0, "errors_corrected": 0.4},
        "altogether": {"cider_d": 3.6, "name_retention": 0.6, "errors_corrected": 0.3},
        "antarctic_beam": {"cider_d": 0.3, "held_out_recall": 0.08},
        "antarctic_sample": {"cider_d": 0.3, "held_out_recall": 0.0},
        "antarctic_custom": {"cider_d": 0.3, "held_out_recall": 0.7},
    }
    for key, values in overrides.items():
        rows[key] = {**rows[key], **values}
    return rows


def test_claims_are_decided_by_their_stated_rules():
    from hf_captioners.demo import check_claims, claims_text

    assert all(c["shown"] for c in check_claims(_rows()))
    names_lost = check_claims(_rows(altogether={"name_retention": 0.5}))
    assert [c["shown"] for c in names_lost] == [True, True, False, True, True]
    no_margin = check_claims(_rows(altogether={"cider_d": 1.45}))
    assert [c["shown"] for c in no_margin][:2] == [True, False]
    # naming the held-out concept without the entry, or not with it, both break antarctic's claim
    assert not check_claims(_rows(antarctic_sample={"held_out_recall": 0.1}))[-1]["shown"]
    assert not check_claims(_rows(antarctic_custom={"held_out_recall": None}))[-1]["shown"]
    text = claims_text(names_lost)
    assert text.count("\n") == 4 and "**not shown**: Altogether keeps most names" in text and "50.0%" in text
