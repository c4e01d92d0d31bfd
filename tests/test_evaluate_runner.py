"""Evaluation runner and `hf-captioners evaluate`: eval-set loaders, batching, failure isolation, outputs,
scoring saved captions and baselines, and one end-to-end run with a saved tiny Altogether model."""

from __future__ import annotations

import json

import pytest

from hf_captioners.evaluation.runner import (
    generate_captions,
    load_eval_set,
    load_predictions,
    run_evaluation,
    score_captions,
)
from hf_captioners.metrics import cider_d


class FakePipeline:
    """Stands in for `pipeline("image-to-text", ...)`: echoes the alt-text, records its calls."""

    def __init__(self, fail_on: str | None = None):
        self.calls = []
        self.fail_on = fail_on

    def __call__(self, images, alt_text=None, batch_size=None, generate_kwargs=None):
        self.calls.append({"n": len(images), "alt_text": list(alt_text or []), "batch_size": batch_size,
                           "generate_kwargs": generate_kwargs})
        if self.fail_on is not None and any(a and self.fail_on in a for a in alt_text or []):
            raise RuntimeError("model exploded")
        return [[{"generated_text": f"a picture of {a or 'something'}"}] for a in (alt_text or [None] * len(images))]


def test_loaders_agree_across_formats(tiny_toyworld):
    toy = load_eval_set(toyworld=str(tiny_toyworld), split="eval")
    ft = load_eval_set(ft_json=str(tiny_toyworld / "altogether_ft" / "eval.json"), image_root=str(tiny_toyworld / "images"))
    karpathy = load_eval_set(coco_json=str(tiny_toyworld / "coco" / "dataset_coco.json"),
                             image_root=str(tiny_toyworld / "images"), split="eval")
    annotations = load_eval_set(coco_json=str(tiny_toyworld / "coco" / "captions_eval.json"),
                                image_root=str(tiny_toyworld / "images"))
    short = load_eval_set(toyworld=str(tiny_toyworld), split="eval", references="short")
    assert len(toy) == len(ft) == len(karpathy) == len(annotations) == 16
    assert [e.key for e in toy] == [e.key for e in ft] == [e.key for e in karpathy]
    assert [e.references for e in toy] == [e.references for e in ft]  # dense caption = FT round3
    assert [e.references for e in short] == [e.references for e in karpathy] == [e.references for e in annotations]
    assert [e.alt_text for e in toy] == [e.alt_text for e in ft]
    assert [e.name for e in toy] == [e.name for e in ft] and any(e.name for e in toy)
    assert all(len(e.references) == 5 for e in short)
    assert all(e.image.exists() for e in ft + karpathy + annotations)
    with pytest.raises(ValueError, match="exactly one eval set"):
        load_eval_set()
    with pytest.raises(FileNotFoundError, match="no toy-world split 'nope'"):
        load_eval_set(toyworld=str(tiny_toyworld), split="nope")


def test_bad_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        load_eval_set(ft_json=str(bad))
    bad.write_text(json.dumps({"data": [{"alt": "x"}]}))
    with pytest.raises(ValueError, match="eval set is empty"):  # the one record lacks round3 / img_path: skipped
        load_eval_set(ft_json=str(bad))
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"key": "a", "caption": "ok"}\n{"caption": "no key"}\n')
    with pytest.raises(ValueError, match="p.jsonl:2"):
        load_predictions(preds)


def test_batched_generation_forwards_alt_text_and_kwargs(tiny_toyworld):
    examples = load_eval_set(toyworld=str(tiny_toyworld), split="eval")
    pipe = FakePipeline()
    captions, errors = generate_captions(pipe, examples, batch_size=6, generate_kwargs={"num_beams": 2}, progress=False)
    assert errors == {}
    assert [c["n"] for c in pipe.calls] == [6, 6, 4] and [c["batch_size"] for c in pipe.calls] == [6, 6, 4]
    assert all(c["generate_kwargs"] == {"num_beams": 2} for c in pipe.calls)
    assert [a for c in pipe.calls for a in c["alt_text"]] == [e.alt_text or None for e in examples]  # "" = no alt-text
    assert captions == [f"a picture of {e.alt_text or 'something'}" for e in examples]


def test_one_bad_example_does_not_stop_the_run(tiny_toyworld, tmp_path):
    examples = load_eval_set(toyworld=str(tiny_toyworld), split="eval")
    bad = examples[5]
    bad.alt_text = bad.alt_text + " POISON"
    examples[9].image = b"not an image"
    metrics = run_evaluation(examples, tmp_path, pipe=FakePipeline(fail_on="POISON"), batch_size=4, progress=False)
    assert set(metrics["errors"]) == {bad.key, examples[9].key}
    assert "model exploded" in metrics["errors"][bad.key] and "ImageInputError" in metrics["errors"][examples[9].key]
    assert metrics["n"] == 16 and metrics["n_missing"] == 2
    rows = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == [e.key for e in examples]
    assert rows[5]["caption"] is None and rows[4]["caption"] == f"a picture of {examples[4].alt_text}"


def test_results_are_the_metrics_of_the_written_captions(tiny_toyworld, tmp_path):
    examples = load_eval_set(toyworld=str(tiny_toyworld), split="eval")
    metrics = run_evaluation(examples, tmp_path, pipe=FakePipeline(), batch_size=16, progress=False,
                             run_info={"model": "fake"})
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["cider_d"] == pytest.approx(metrics["cider_d"]) and saved["run"] == {"model": "fake"}
    captions = load_predictions(tmp_path / "captions.jsonl")
    want = cider_d([captions[e.key] for e in examples], [e.references for e in examples])
    assert saved["cider_d"] == pytest.approx(want["cider_d"])
    assert saved["per_example"]["cider_d"] == pytest.approx(want["scores"])
    for key in ("bleu_4", "rouge_l", "retention", "name_retention", "lengths"):
        assert saved[key] is not None
    # rescoring the saved captions without a model gives the same numbers
    again = run_evaluation(examples, tmp_path / "again", predictions=captions, progress=False)
    assert again["cider_d"] == pytest.approx(metrics["cider_d"]) and again["bleu_4"] == pytest.approx(metrics["bleu_4"])


def test_alt_text_baseline_keeps_every_name(tiny_toyworld, tmp_path):
    examples = load_eval_set(toyworld=str(tiny_toyworld), split="eval")
    metrics = run_evaluation(examples, tmp_path, baseline="alt_text", progress=False)
    assert metrics["name_retention"] == 1.0 and metrics["retention"] == 1.0
    scored = score_captions(examples, [e.references[0] for e in examples])
    assert scored["cider_d"] > metrics["cider_d"]  # copying the reference beats copying the alt-text
    with pytest.raises(ValueError, match="exactly one caption source"):
        run_evaluation(examples, tmp_path, baseline="alt_text", predictions={})


def test_cli_scores_predictions_and_baseline(tiny_toyworld, tmp_path, capsys):
    from hf_captioners.commands import main

    ft = str(tiny_toyworld / "altogether_ft" / "eval.json")
    assert main(["evaluate", "--baseline", "alt_text", "--ft-json", ft, "--out", str(tmp_path / "base"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "CIDEr-D" in out and out.strip().splitlines()[-1].startswith("evaluate: 16 examples, CIDEr-D")
    preds = tmp_path / "base" / "captions.jsonl"
    assert main(["evaluate", "--predictions", str(preds), "--ft-json", ft, "--out", str(tmp_path / "re"), "--no-progress"]) == 0
    base = json.loads((tmp_path / "base" / "results.json").read_text())
    again = json.loads((tmp_path / "re" / "results.json").read_text())
    assert again["cider_d"] == pytest.approx(base["cider_d"]) and again["run"]["source"] == str(preds)


@pytest.mark.slow
def test_end_to_end_with_a_saved_tiny_altogether(tiny_toyworld, tmp_path, capsys):
    """The real path: a saved model folder -> remote-code image-to-text pipeline -> metrics files."""
    from hf_captioners.commands import main
    from hf_captioners.toyworld.tiny_altogether import tiny_altogether

    model, processor = tiny_altogether(image_size=32)
    model.generation_config.update(do_sample=False, temperature=1.0, top_p=1.0)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    out = tmp_path / "eval"
    code = main(["evaluate", "--model", str(folder), "--toyworld", str(tiny_toyworld), "--split", "eval", "--limit", "6",
                 "--batch-size", "4", "--max-new-tokens", "5", "--out", str(out), "--no-progress"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    rows = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert results["n"] == 6 and results["errors"] == {} and len(rows) == 6
    assert all(isinstance(r["caption"], str) for r in rows)
    assert results["run"]["generate_kwargs"] == {"max_new_tokens": 5}
    # the pipeline's captions equal a direct pipeline call on the same inputs
    from transformers import pipeline

    from hf_captioners.altogether.image_utils import load_rgb_image

    examples = load_eval_set(toyworld=str(tiny_toyworld), split="eval", limit=6)
    pipe = pipeline("image-to-text", model=str(folder), trust_remote_code=True)
    direct = pipe([load_rgb_image(e.image) for e in examples], alt_text=[e.alt_text for e in examples],
                  generate_kwargs={"max_new_tokens": 5})
    assert [d[0]["generated_text"] for d in direct] == [r["caption"] for r in rows]
