"""A saved Altogether folder is valid Hub remote code: it loads and captions in a fresh process where
`hf_captioners` cannot be imported, through AutoModel / AutoProcessor and both pipelines."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import pipeline

from hf_captioners.toyworld.tiny_altogether import tiny_altogether

sys.path.insert(0, str(Path(__file__).parent))
from isolation import run_without_package  # noqa: E402

ALT_TEXTS = ["a red square &amp; Zorblax", None, ["blue circle", "blue circle", "photo"]]
CAPTIONS = ["a red square.", "a green thing", "a blue circle on the left"]

FRESH_PROCESS = textwrap.dedent(
    """
    import json, os, sys

    import torch
    from PIL import Image
    from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor, pipeline

    ckpt, images = sys.argv[1], [Image.open(p) for p in sys.argv[2:]]
    alt_texts, captions = json.loads(os.environ["ALT_TEXTS"]), json.loads(os.environ["CAPTIONS"])
    model = AutoModel.from_pretrained(ckpt, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(ckpt, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
    assert type(AutoModelForImageTextToText.from_pretrained(ckpt, trust_remote_code=True)) is type(model)
    result = {"frozen_tower": not any(p.requires_grad for p in model.vision_model.parameters())}
    with torch.no_grad():
        batch = processor(images=images, alt_text=alt_texts, captions=captions)
        result["loss"] = float(model(**batch).loss)
        inputs = processor(images=images, alt_text=alt_texts)
        out = model.generate(**inputs, do_sample=False, max_new_tokens=8)
        result["tokens"] = out.tolist()
        result["captions"] = processor.batch_decode(out)
        result["beam"] = model.generate(**inputs, do_sample=False, num_beams=2, max_new_tokens=6).tolist()
        result["clipcap_beam"] = model.generate(**inputs, num_beams=3, num_return_sequences=3, max_new_tokens=6,
                                                custom_generate=model.clipcap_beam_search).tolist()
        result["image_processor"] = [type(processor.image_processor).__name__, type(processor.image_processor).__module__]
        result["pixels"] = processor(images=images)["pixel_values"].tolist()

    itt = pipeline("image-text-to-text", model=ckpt, trust_remote_code=True)
    result["itt"] = [
        itt(images=image, text=alt if isinstance(alt, str) else "", max_new_tokens=8, return_full_text=False,
            generate_kwargs={"do_sample": False})[0]["generated_text"]
        for image, alt in zip(images, alt_texts)
    ]
    i2t = pipeline("image-to-text", model=ckpt, trust_remote_code=True)
    result["i2t_type"] = type(i2t).__name__
    result["i2t"] = i2t(images, alt_text=alt_texts, max_new_tokens=8, do_sample=False, batch_size=2)
    result["i2t_single"] = i2t(images[0], alt_text=alt_texts[0], max_new_tokens=8, do_sample=False)
    print("RESULT" + json.dumps(result))
    """
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    model, processor = tiny_altogether("opt", seed=4)
    for p in model.mapper.parameters():
        p.data.normal_(0, 0.3)
    ckpt = root / "ckpt"
    model.save_pretrained(ckpt)
    processor.save_pretrained(ckpt)
    paths = []
    for i, color in enumerate([(220, 20, 20), (20, 200, 20), (20, 20, 220)]):
        path = root / f"img{i}.png"
        Image.new("RGB", (40 + 8 * i, 36), color).save(path)
        paths.append(path)
    return model, processor, ckpt, paths


def test_saved_folder_is_self_contained(saved):
    _, _, ckpt, _ = saved
    names = {p.name for p in ckpt.iterdir()}
    expected = {"configuration_altogether.py", "modeling_altogether.py", "processing_altogether.py",
                "image_utils.py", "image_processing_altogether.py", "pipeline_altogether.py", "model.safetensors", "config.json",
                "processor_config.json", "generation_config.json", "tokenizer.json"}  # fmt: skip
    assert expected <= names
    for name in ("configuration_altogether.py", "modeling_altogether.py", "processing_altogether.py", "pipeline_altogether.py",
                 "image_processing_altogether.py"):
        code = (ckpt / name).read_text()
        assert "hf_captioners" not in code and "from .." not in code, name
    config = json.loads((ckpt / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForImageTextToText", "AutoProcessor"}
    assert config["custom_pipelines"]["image-to-text"]["impl"] == "pipeline_altogether.AltogetherImageToTextPipeline"
    assert json.loads((ckpt / "tokenizer_config.json").read_text())["padding_side"] == "left"


def test_fresh_process_without_the_package_gives_identical_results(saved, tmp_path):
    model, processor, ckpt, paths = saved
    images = [Image.open(p) for p in paths]
    with torch.no_grad():
        loss = float(model(**processor(images=images, alt_text=ALT_TEXTS, captions=CAPTIONS)).loss)
        inputs = processor(images=images, alt_text=ALT_TEXTS)
        tokens = model.generate(**inputs, do_sample=False, max_new_tokens=8)
        beam = model.generate(**inputs, do_sample=False, num_beams=2, max_new_tokens=6)
        clipcap_beam = model.generate(**inputs, num_beams=3, num_return_sequences=3, max_new_tokens=6,
                                      custom_generate=model.clipcap_beam_search)  # fmt: skip
        pixels = processor(images=images)["pixel_values"]
    captions = processor.batch_decode(tokens)

    proc = run_without_package(FRESH_PROCESS, [ckpt, *paths], tmp_path,
                               env={"ALT_TEXTS": json.dumps(ALT_TEXTS), "CAPTIONS": json.dumps(CAPTIONS)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])

    assert result["frozen_tower"]
    assert abs(result["loss"] - loss) < 1e-5
    assert result["tokens"] == tokens.tolist()
    assert result["beam"] == beam.tolist()
    # ClipCap's own beam search and the torchvision-exact crop travel with the folder
    assert result["clipcap_beam"] == clipcap_beam.tolist()
    name, module = result["image_processor"]
    assert name == "AltogetherImageProcessor" and module.startswith("transformers_modules")
    assert torch.equal(torch.tensor(result["pixels"]), pixels)
    assert result["captions"] == captions
    # the built-in image-text-to-text pipeline (alt-text as text) and the shipped image-to-text pipeline
    plain = [processor.batch_decode(model.generate(**processor(images=im, alt_text=a if isinstance(a, str) else ""),
                                                   do_sample=False, max_new_tokens=8))[0]
             for im, a in zip(images, ALT_TEXTS)]  # fmt: skip
    assert [t.strip() for t in result["itt"]] == plain
    assert result["i2t_type"] == "AltogetherImageToTextPipeline"
    assert result["i2t"] == [[{"generated_text": c}] for c in captions]
    assert result["i2t_single"] == [{"generated_text": captions[0]}]


def test_pipelines_in_process(saved):
    model, processor, ckpt, paths = saved
    images = [Image.open(p) for p in paths]
    pipe = pipeline("image-to-text", model=str(ckpt), trust_remote_code=True)
    out = pipe(images, alt_text=ALT_TEXTS, max_new_tokens=8, do_sample=False)
    expected = processor.batch_decode(
        model.generate(**processor(images=images, alt_text=ALT_TEXTS), do_sample=False, max_new_tokens=8)
    )
    assert [o[0]["generated_text"] for o in out] == expected
    with pytest.raises(ValueError, match="one entry per image"):
        pipe(images, alt_text=["only one"])
