"""BART text infilling (noise properties) and tiny BART denoising pretraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_captioners.toyworld.backbones.bart import pretrain_bart, table_copy_rate, text_infilling

MASK = 4


def _removed_and_runs(original: list[int], noisy: list[int]) -> tuple[int, int]:
    """Align a noisy sequence (unique original tokens) to its original: tokens removed, masks used."""
    kept = [t for t in noisy if t != MASK]
    return len(original) - len(kept), noisy.count(MASK)


def test_spans_become_single_masks_and_order_is_kept():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(3, 40))
        ids = [0, *range(100, 100 + n), 2]
        noisy = text_infilling(ids, MASK, rng)
        assert noisy[0] == 0 and noisy[-1] == 2
        kept = [t for t in noisy if t != MASK]
        assert kept == [t for t in ids if t in set(kept)]
        assert all(not (a == MASK and b == MASK) for a, b in zip(noisy, noisy[1:]))
        removed, masks = _removed_and_runs(ids, noisy)
        if removed:
            assert masks >= 1
        for a, b in zip(kept, kept[1:]):
            gap = ids.index(b) - ids.index(a) - 1
            between = noisy[noisy.index(a) + 1 : noisy.index(b)]
            assert between == ([MASK] if gap else between) and len(between) <= 1


def test_mask_ratio_is_roughly_right():
    rng = np.random.default_rng(1)
    removed = total = 0
    for _ in range(400):
        ids = [0, *range(100, 130), 2]
        removed += _removed_and_runs(ids, text_infilling(ids, MASK, rng, mask_ratio=0.3))[0]
        total += 30
    assert 0.25 < removed / total < 0.35


def test_deterministic_given_a_seed_and_noop_when_nothing_to_mask():
    ids = [0, *range(100, 120), 2]
    first = [text_infilling(ids, MASK, np.random.default_rng(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    assert any(text_infilling(ids, MASK, np.random.default_rng(s)) != first[0] for s in range(8, 12))
    assert text_infilling([0, 2], MASK, np.random.default_rng(0)) == [0, 2]
    assert text_infilling(ids, MASK, np.random.default_rng(0), mask_ratio=0.0) == ids


@pytest.fixture(scope="module")
def trained(tiny_toyworld, tmp_path_factory):
    out = tmp_path_factory.mktemp("bart")
    metrics = pretrain_bart(
        tiny_toyworld, out, config={"d_model": 32, "layers": 1}, steps=40, batch_size=16, lr=5e-3, vocab_size=400,
        progress=False, threads=1,
    )
    return out, metrics


def test_bart_learns_and_reports_reconstruction(trained):
    _, metrics = trained
    assert metrics["loss_end"] < metrics["loss_start"] - 1.0
    assert metrics["eval_perplexity"] == pytest.approx(np.exp(metrics["eval_reconstruction_loss"]), rel=1e-3)
    assert "<mask>" in metrics["example"]["noisy"]


def test_reload_matches_and_generation_starts_like_bart_large(trained):
    from transformers import AutoTokenizer, BartForConditionalGeneration

    out, _ = trained
    model = BartForConditionalGeneration.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.decoder_start_token_id == tokenizer.eos_token_id == 2
    assert model.generation_config.forced_bos_token_id == tokenizer.bos_token_id == 0
    batch = tokenizer(["a red <mask> on a striped background"], return_tensors="pt")
    assert batch["input_ids"][0, 0].item() == 0 and batch["input_ids"][0, -1].item() == 2
    assert tokenizer.mask_token_id in batch["input_ids"][0].tolist()
    again = BartForConditionalGeneration.from_pretrained(out)
    labels = tokenizer(["a red circle on a striped background"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(**batch, labels=labels).logits, again(**batch, labels=labels).logits)
    generated = model.generate(**batch, max_new_tokens=8, num_beams=1)
    assert generated[0, :2].tolist() == [2, 0]


class _EchoModel:
    """Stands in for a BART: `generate` returns its input unchanged, or a fixed caption."""

    def __init__(self, echo: bool, tokenizer):
        self.echo, self.tokenizer = echo, tokenizer
        self.config = type("Config", (), {"max_position_embeddings": 128})()

    def eval(self):
        return self

    def generate(self, input_ids, attention_mask=None, **kwargs):
        if self.echo:
            return input_ids
        fixed = self.tokenizer(["a small red circle"], return_tensors="pt")["input_ids"]
        return fixed.repeat(input_ids.shape[0], 1)


def test_table_copy_rate_tells_a_copier_from_a_language_model(trained):
    from transformers import AutoTokenizer

    out, metrics = trained
    tokenizer = AutoTokenizer.from_pretrained(out)
    texts = ["a large blue star on a noisy background", "no colour here", "a small white ring at the top"] * 10
    copier = table_copy_rate(_EchoModel(True, tokenizer), tokenizer, texts)
    assert copier == {"table_copy_rate": 1.0, "table_copy_probes": 20}
    assert table_copy_rate(_EchoModel(False, tokenizer), tokenizer, texts)["table_copy_rate"] < 0.3
    assert table_copy_rate(_EchoModel(True, tokenizer), tokenizer, ["no colour"])["table_copy_rate"] is None
    assert 0.0 <= metrics["table_copy_rate"] <= 1.0 and metrics["table_copy_probes"] > 0
