"""`hf-captioners pretrain-backbones --fast` writes three loadable backbones and one metrics file."""

from __future__ import annotations

import json

import pytest


def test_pretrain_backbones_fast_cli(tiny_toyworld, tmp_path, capsys):
    from transformers import (
        AutoModel,
        AutoModelForCausalLM,
        AutoTokenizer,
        BartForConditionalGeneration,
        CLIPProcessor,
    )

    from hf_captioners.commands import main

    out = tmp_path / "backbones"
    assert main(["pretrain-backbones", "--toyworld", str(tiny_toyworld), "--out", str(out), "--fast",
                 "--no-progress", "--threads", "1"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("pretrain-backbones: clip R@1") and str(out) in summary
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fast"] is True and set(metrics) >= {"clip", "lm", "bart"}
    for name in ("clip", "lm", "bart"):
        assert metrics[name]["loss_end"] < metrics[name]["loss_start"]
    assert AutoModel.from_pretrained(out / "clip").config.model_type == "clip"
    CLIPProcessor.from_pretrained(out / "clip")
    AutoModelForCausalLM.from_pretrained(out / "lm")
    assert AutoTokenizer.from_pretrained(out / "lm").padding_side == "left"
    BartForConditionalGeneration.from_pretrained(out / "bart")
    AutoTokenizer.from_pretrained(out / "bart")

    # one backbone again, with its own step count: its entry is replaced, the others' are kept
    assert main(["pretrain-backbones", "--toyworld", str(tiny_toyworld), "--out", str(out), "--only", "bart",
                 "--steps", "3", "--limit", "20", "--eval-limit", "8", "--no-progress"]) == 0
    assert "table copy rate" in capsys.readouterr().out
    again = json.loads((out / "metrics.json").read_text())
    assert again["bart"]["steps"] == 3 and again["bart"]["eval_texts"] < metrics["bart"]["eval_texts"]
    assert again["clip"] == metrics["clip"] and again["lm"] == metrics["lm"]


def test_unknown_backbone_is_rejected(tmp_path):
    from hf_captioners.toyworld.backbones import pretrain_backbones

    with pytest.raises(ValueError, match="unknown backbones"):
        pretrain_backbones(tmp_path, tmp_path / "out", only=("vit",))


def test_public_names_resolve_lazily():
    import hf_captioners
    from hf_captioners.toyworld import backbones

    assert callable(hf_captioners.pretrain_backbones) and callable(hf_captioners.build_clip_tokenizer)
    for name in backbones.__all__:
        assert getattr(backbones, name) is not None
