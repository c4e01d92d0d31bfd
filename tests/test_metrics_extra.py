"""BLEU-4 / ROUGE-L (package definitions), CLIPScore / RefCLIPScore, alt-text retention and length statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_captioners.metrics import (
    alt_text_retention,
    bleu_rouge,
    caption_length_stats,
    clip_scores,
    salient_terms,
)


def test_bleu_rouge_are_the_packages_scores():
    import sacrebleu
    from rouge_score import rouge_scorer

    preds = ["a dog runs on the grass", "a cat on a sofa", "two birds"]
    refs = [["a dog running on the grass", "dog on grass"], ["a cat sleeping on a red sofa"], ["two small birds", "birds", "a pair of birds"]]
    got = bleu_rouge(preds, refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(3)]
    assert got["bleu_4"] == pytest.approx(sacrebleu.corpus_bleu(preds, streams).score)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    want = [100 * max(scorer.score(r, p)["rougeL"].fmeasure for r in rs) for p, rs in zip(preds, refs)]
    assert got["rouge_l_scores"] == pytest.approx(want)
    assert bleu_rouge(["same words here ok"], [["same words here ok"]])["bleu_4"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="2 predictions but 1 reference lists"):
        bleu_rouge(["a", "b"], [["a"]])


def test_salient_terms_and_retention():
    alt = "Portrait of Rex the Border Collie at Lake Tahoe. the dog was photographed in 2019"
    terms = salient_terms(alt)
    assert {"rex", "border collie", "lake tahoe", "photographed"} <= set(terms)
    assert "2019" not in terms and "portrait" not in [t for t in terms if " " in t]
    got = alt_text_retention(["Rex, a border collie, sits by a lake", "a dog"], [alt, alt])
    share = sum(t in ("rex", "border collie") for t in terms) / len(terms)
    assert got["scores"][0] == pytest.approx(share) and got["scores"][1] == 0.0
    assert alt_text_retention(["x"], ["a dog on the grass"])["scores"] == [None]  # nothing salient to keep
    named = alt_text_retention(["Bella runs", "a dog runs", "Max"], ["Bella the dog", "Bella the dog", "a dog"],
                               names=["Bella", "Bella", "Max"])
    assert named["scores"] == [1.0, 0.0, None]  # the third alt-text does not carry the name
    assert named["retention"] == 0.5 and named["n_scored"] == 2
    with pytest.raises(ValueError, match="2 captions but 1 alt-texts"):
        alt_text_retention(["a", "b"], ["a"])


def test_caption_length_stats():
    stats = caption_length_stats(["a b c", "", "a b c d e"])
    assert stats == {"mean": 8 / 3, "median": 3.0, "min": 0, "max": 5, "empty": pytest.approx(1 / 3)}


class TinyClipProcessor:
    """CLIPImageProcessor for pixels + a tiny BPE tokenizer for text (any processor with this call shape works)."""

    def __init__(self, image_size=32):
        from transformers import CLIPImageProcessor

        from hf_captioners.toyworld.tiny_altogether import tiny_tokenizer

        self.images = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size=image_size)
        self.tokenizer = tiny_tokenizer(vocab_size=300)
        self.tokenizer.padding_side = "right"  # CLIP pools at the first end-of-text token: pad after it

    def __call__(self, text=None, images=None, padding=False, truncation=False, return_tensors=None):
        if images is not None:
            return self.images(images, return_tensors=return_tensors)
        text = [t + self.tokenizer.eos_token for t in text]
        return self.tokenizer(text, padding=padding, truncation=truncation, max_length=32, return_tensors=return_tensors)


@pytest.fixture(scope="module")
def tiny_clip():
    from transformers import CLIPConfig, CLIPModel

    processor = TinyClipProcessor()
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(processor.tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 32, "eos_token_id": processor.tokenizer.eos_token_id,
                     "pad_token_id": processor.tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    return CLIPModel(config).eval(), processor


def _images(n):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (40, 48, 3), dtype=np.uint8) for _ in range(n)]


def test_clip_score_matches_direct_computation(tiny_clip):
    model, processor = tiny_clip
    images, captions = _images(3), ["a red circle", "a blue square on grass", "two green triangles"]
    refs = [["a red ball", "red circle"], ["a square"], ["green shapes", "triangles", "two triangles"]]
    got = clip_scores(images, captions, model, processor, references=refs, batch_size=2)

    def emb_text(texts):
        batch = processor(text=["A photo depicts " + t for t in texts], padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            out = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        out = out if torch.is_tensor(out) else out.pooler_output
        return torch.nn.functional.normalize(out, dim=-1)

    with torch.no_grad():
        pix = processor(images=[__import__("PIL").Image.fromarray(x) for x in images], return_tensors="pt")["pixel_values"]
        img = model.get_image_features(pixel_values=pix)
    img = torch.nn.functional.normalize(img if torch.is_tensor(img) else img.pooler_output, dim=-1)
    cap = emb_text(captions)
    want_clip = (2.5 * (img * cap).sum(-1).clamp(min=0)).tolist()
    assert got["clip_scores"] == pytest.approx(want_clip, abs=1e-5)
    want_ref = []
    for i, rs in enumerate(refs):
        best = max(max((emb_text(rs) @ cap[i]).tolist()), 0.0)
        c = want_clip[i]
        want_ref.append(2 * c * best / (c + best) if c + best > 0 else 0.0)
    assert got["ref_clip_scores"] == pytest.approx(want_ref, abs=1e-5)
    single = clip_scores(images, captions, model, processor, references=refs, batch_size=1)
    assert single["clip_scores"] == pytest.approx(got["clip_scores"], abs=1e-5)  # batching changes nothing
    assert all(0 <= s <= 2.5 for s in got["clip_scores"])


def test_clip_score_errors(tiny_clip):
    model, processor = tiny_clip
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        clip_scores(_images(2), ["a"], model, processor)
    from hf_captioners.altogether.image_utils import ImageInputError

    with pytest.raises(ImageInputError):
        clip_scores([b""], ["a"], model, processor)
