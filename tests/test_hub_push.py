"""push_to_hub: the dry-run folder is exactly what would be uploaded and loads in a fresh process without the
package (AutoModel, both Altogether pipelines, antarctic's pipeline); the model card is rendered from the
template with the numbers of a real evaluation run and valid Hub metadata; the upload path makes the right
HfApi calls (a recording fake, checked against HfApi's real signatures)."""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from PIL import Image

import hf_captioners
from hf_captioners.antarctic import AntarcticRetriever  # noqa: E402
from hf_captioners.hub.push import push_to_hub
from hf_captioners.registry import model_pipeline  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from isolation import run_without_package  # noqa: E402

SRC = Path(hf_captioners.__file__).resolve().parent.parent
GEN = {"max_new_tokens": 6, "do_sample": False}


@pytest.fixture(scope="module")
def altogether(tmp_path_factory, tiny_toyworld):
    from transformers import pipeline

    from hf_captioners.evaluation.runner import load_eval_set, run_evaluation
    from hf_captioners.toyworld.tiny_altogether import tiny_altogether

    root = tmp_path_factory.mktemp("hub_altogether")
    model, processor = tiny_altogether("opt", seed=2)
    for p in model.mapper.parameters():
        p.data.normal_(0, 0.3)
    model.save_pretrained(root / "ckpt")
    processor.save_pretrained(root / "ckpt")
    examples = load_eval_set(toyworld=str(tiny_toyworld), split="eval", limit=4)
    pipe = pipeline("image-to-text", model=str(root / "ckpt"), trust_remote_code=True)
    results = run_evaluation(examples, root / "eval", pipe=pipe, generate_kwargs=GEN, batch_size=4,
                             run_info={"generate_kwargs": GEN}, progress=False)  # fmt: skip
    baseline = run_evaluation(examples, root / "baseline", baseline="alt_text", progress=False)
    return model, processor, root, results | {"baseline": baseline}


@pytest.fixture(scope="module")
def antarctic(tmp_path_factory):
    from hf_captioners.antarctic import AntarcticCache
    from hf_captioners.toyworld.tiny_antarctic import tiny_antarctic

    root = tmp_path_factory.mktemp("hub_antarctic")
    model, processor, texts = tiny_antarctic()
    model.set_cache(AntarcticCache.from_corpus(texts, AntarcticRetriever(None, model.clip, processor).encode, num_unigrams=30,
                                               num_bigrams=30, progress=False))  # fmt: skip
    return model, processor, root


def test_altogether_dry_run_folder_and_card(altogether):
    model, processor, root, results = altogether
    out = push_to_hub(root / "ckpt", "someone/tiny-altogether", dry_run_dir=root / "dry", results=root / "eval" / "results.json",
                      eval_dataset_name="toy world (eval)", eval_dataset_id="hf-captioners/toyworld")  # fmt: skip
    names = {p.name for p in out.iterdir()}
    assert {"README.md", "config.json", "model.safetensors", "generation_config.json", "processor_config.json",
            "tokenizer.json", "configuration_altogether.py", "modeling_altogether.py", "processing_altogether.py",
            "pipeline_altogether.py", "image_utils.py"} <= names  # fmt: skip
    assert not any(n.startswith(".") for n in names)

    text = (out / "README.md").read_text()
    card = ModelCard(text)  # parses the YAML and the model-index (raises on malformed eval results)
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "image-to-text"
    assert data.license == "cc-by-nc-4.0" and data.datasets == ["activebus/Altogether-FT"]
    assert data.base_model == ["facebook/metaclip-h14-fullcc2.5b", "facebook/opt-1.3b"]
    assert set(data.metrics) == {"cider", "bleu", "rouge"} and "custom_code" in data.tags
    by_metric = {r.metric_type: r for r in data.eval_results}
    assert by_metric["cider"].metric_value == pytest.approx(results["cider_d"] * 100, abs=1e-3)
    assert by_metric["bleu"].metric_value == pytest.approx(results["bleu_4"], abs=1e-3)
    assert by_metric["cider"].dataset_name == "toy world (eval)" and by_metric["cider"].task_type == "image-to-text"
    assert f"| CIDEr-D | {results['cider_d'] * 100:.2f} |" in text
    assert f"| ROUGE-L | {results['rouge_l']:.2f} |" in text
    assert f"({results['n']} images" in text and '"max_new_tokens": 6' in text
    assert "{{" not in text and "{%" not in text
    for needle in ("someone/tiny-altogether", 'pipeline("image-to-text"', 'pipeline("image-text-to-text"',
                   "batch_size=", "float16", "## Training recipe", "Alt-text biases", "CLIP biases",
                   "xu2024altogether", "Re-aligning Alt-text", "mokady2021clipcap", f"{model.config.prefix_length} prefix"):
        assert needle in text, needle  # fmt: skip
    assert f"({sum(p.numel() for p in model.parameters()):,})" in text  # tied weights counted once

    with pytest.raises(FileExistsError, match="not empty"):
        push_to_hub(root / "ckpt", "someone/x", dry_run_dir=root / "dry")


def test_a_clipcap_checkpoint_gets_clipcaps_card(altogether):
    """prompt_length=0 is plain ClipCap (rmokady/CLIP_prefix_caption, MIT licence, COCO, CLIP + GPT-2): its card
    must not call it Altogether nor carry Altogether's licence, dataset or alt-text caveats."""
    from hf_captioners.hub.cards import render_model_card

    model = altogether[0]
    config = model.config.to_dict() | {"prompt_length": 0}
    text = render_model_card(config, "someone/tiny-clipcap")
    data = ModelCard(text).data
    assert data.license == "mit" and data.datasets == ["coco"]
    assert data.base_model == ["openai/clip-vit-base-patch32", "openai-community/gpt2"]
    assert "altogether" not in data.tags and "clipcap" in data.tags
    assert "A **ClipCap** image captioner" in text and "An **Altogether** image captioner" not in text
    assert "Alt-text biases" not in text and "none (plain ClipCap)" in text
    assert "ClipCap's recipe" in text and "{%" not in text
    altogether_card = render_model_card(model.config.to_dict(), "someone/tiny-altogether")
    assert "An **Altogether** image captioner" in altogether_card and "Alt-text biases" in altogether_card


def test_model_object_needs_its_processor_and_card_without_results(altogether, antarctic):
    model, processor, root, _ = altogether
    with pytest.raises(ValueError, match="needs its processor"):
        push_to_hub(model, "someone/x", dry_run_dir=root / "no_processor")
    assert not (root / "no_processor").exists()
    out = push_to_hub(model, "someone/x", processor=processor, dry_run_dir=root / "from_object", license="apache-2.0")
    card = ModelCard((out / "README.md").read_text())
    assert card.data.license == "apache-2.0" and not card.data.eval_results
    assert "No evaluation results" in card.text
    # non-zero scores (the copy-the-alt-text baseline) land in the table and the model-index unchanged
    baseline = altogether[3]["baseline"]
    assert baseline["cider_d"] > 0 and baseline["bleu_4"] > 0
    out = push_to_hub(model, "someone/x", processor=processor, dry_run_dir=root / "baseline_card", results=root / "baseline")
    text = (out / "README.md").read_text()
    assert f"| CIDEr-D | {baseline['cider_d'] * 100:.2f} |" in text and f"| BLEU-4 | {baseline['bleu_4']:.2f} |" in text
    assert f"| alt-text retention | {baseline['retention'] * 100:.1f}% |" in text
    values = {r.metric_type: r.metric_value for r in ModelCard(text).data.eval_results}
    assert values == pytest.approx({"cider": baseline["cider_d"] * 100, "bleu": baseline["bleu_4"], "rouge": baseline["rouge_l"]}, abs=1e-3)
    with pytest.raises(ValueError, match="results.json"):
        push_to_hub(model, "someone/x", processor=processor, dry_run_dir=root / "bad", results=root / "ckpt" / "config.json")


class RecordingHfApi:
    """Records calls; each is bound to the real HfApi method's signature so a wrong argument fails."""

    def __init__(self):
        self.calls = []

    def _record(self, name, *args, **kwargs):
        inspect.signature(getattr(HfApi, name)).bind(None, *args, **kwargs)
        self.calls.append((name, args, kwargs))

    def create_repo(self, *args, **kwargs):
        self._record("create_repo", *args, **kwargs)
        return f"https://huggingface.co/{args[0]}"

    def create_branch(self, *args, **kwargs):
        self._record("create_branch", *args, **kwargs)

    def upload_folder(self, *args, **kwargs):
        self._record("upload_folder", *args, **kwargs)
        folder = Path(kwargs["folder_path"])
        self.uploaded = sorted(p.name for p in folder.iterdir())
        self.readme = (folder / "README.md").read_text()
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()


def test_upload_calls(altogether):
    _, _, root, _ = altogether
    api = RecordingHfApi()
    url = push_to_hub(root / "ckpt", "someone/tiny", private=True, revision="v1", commit_message="first",
                      results=root / "eval", api=api)  # fmt: skip
    assert url == "https://huggingface.co/someone/tiny/commit/abc"
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][2]["private"] is True and api.calls[0][2]["exist_ok"] is True
    assert api.calls[1][2]["branch"] == "v1"
    upload = api.calls[2][2]
    assert (upload["repo_id"], upload["revision"], upload["commit_message"]) == ("someone/tiny", "v1", "first")
    dry = push_to_hub(root / "ckpt", "someone/tiny", results=root / "eval", dry_run_dir=root / "dry_for_upload")
    assert api.uploaded == sorted(p.name for p in dry.iterdir())  # the dry run is exactly what gets uploaded
    assert api.readme == (dry / "README.md").read_text()
    api = RecordingHfApi()
    push_to_hub(root / "ckpt", "someone/tiny", api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"] and api.calls[0][2]["private"] is False
    assert api.calls[1][2]["revision"] is None and "altogether" in api.calls[1][2]["commit_message"]


FRESH = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from PIL import Image
    from transformers import AutoModel, pipeline

    altogether, antarctic, image_path = sys.argv[1:4]
    image = Image.open(image_path)
    gen = {"max_new_tokens": 6, "do_sample": False}
    out = {}
    model = AutoModel.from_pretrained(altogether, trust_remote_code=True)
    out["altogether_module"] = type(model).__module__
    i2t = pipeline("image-to-text", model=altogether, trust_remote_code=True)
    out["i2t"] = i2t([image, image], alt_text=["a red Zorblax", None], batch_size=2, **gen)
    itt = pipeline("image-text-to-text", model=altogether, trust_remote_code=True)
    out["itt"] = itt(images=image, text="a red Zorblax", return_full_text=False, max_new_tokens=6,
                     generate_kwargs={"do_sample": False})[0]["generated_text"]
    model = AutoModel.from_pretrained(antarctic, trust_remote_code=True)
    out["antarctic_module"] = type(model).__module__
    out["cache"] = len(model.cache)
    pipe = pipeline("image-to-text", model=antarctic, trust_remote_code=True)
    out["antarctic"] = pipe([image, image.convert("L")], generate_kwargs={"max_new_tokens": 6}, batch_size=2)
    print("RESULT" + json.dumps(out))
    """
)


def test_dry_run_folders_load_in_a_fresh_process_without_the_package(altogether, antarctic, tmp_path):
    model, processor, root, _ = altogether
    amodel, aprocessor, _ = antarctic
    dry_a = push_to_hub(model, "someone/a", processor=processor, dry_run_dir=tmp_path / "a", results=root / "eval")
    dry_b = push_to_hub(amodel, "someone/b", processor=aprocessor, dry_run_dir=tmp_path / "b")
    assert "antarctic-captions" in (dry_b / "README.md").read_text() and (dry_b / "entries.txt").is_file()
    image = Image.new("RGB", (40, 36), (200, 30, 30))
    image.save(tmp_path / "img.png")

    proc = run_without_package(FRESH, [dry_a, dry_b, tmp_path / "img.png"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["altogether_module"].startswith("transformers_modules")
    assert out["antarctic_module"].startswith("transformers_modules")
    assert out["cache"] == len(amodel.cache)

    image = Image.open(tmp_path / "img.png")
    with torch.no_grad():
        expected = processor.batch_decode(model.generate(**processor(images=[image, image], alt_text=["a red Zorblax", None]),
                                                         max_new_tokens=6, do_sample=False))  # fmt: skip
        plain = processor.batch_decode(model.generate(**processor(images=image, alt_text="a red Zorblax"), **GEN))[0]
        px = aprocessor(images=[image, image.convert("L")])["pixel_values"]
        captions = model_pipeline(amodel, aprocessor).caption_pixels(px, generate_kwargs={"max_new_tokens": 6})
    assert out["i2t"] == [[{"generated_text": c}] for c in expected]
    assert out["itt"].strip() == plain
    assert out["antarctic"] == [[{"generated_text": c}] for c in captions]
