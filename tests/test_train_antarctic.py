"""examples/train_antarctic.py end to end on the tiny toy world: loss, LN-only changes, loading the merged
model, bad records, kill-and-resume, two CPU processes.

The backbones are tiny random CLIP/BART checkpoints saved to folders, so the script loads them through the
same `from_pretrained` paths as openai/clip-vit-base-patch16 and facebook/bart-large.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_captioners.registry import model_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_antarctic.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_antarctic", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return load_script()


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    from transformers import CLIPProcessor

    from hf_captioners.toyworld.tiny_antarctic import tiny_antarctic

    out = tmp_path_factory.mktemp("backbones")
    model, processor, _ = tiny_antarctic()
    model.clip.save_pretrained(out / "clip")
    CLIPProcessor(image_processor=processor.image_processor, tokenizer=processor.clip_tokenizer).save_pretrained(out / "clip")
    model.bart.save_pretrained(out / "bart")
    processor.tokenizer.save_pretrained(out / "bart")
    return out


@pytest.fixture(scope="module")
def data(tiny_toyworld, tmp_path_factory):
    """The toy world's Karpathy json plus bad records: a missing and a corrupt image, an image without a file
    name, one whose captions are all blank, and one blank caption beside good ones."""
    out = tmp_path_factory.mktemp("coco_bad")
    images = out / "images"
    images.mkdir()
    for split in ("train", "eval"):
        (images / split).symlink_to(tiny_toyworld / "images" / split, target_is_directory=True)
    (images / "bad").mkdir()
    (images / "bad" / "corrupt.jpg").write_bytes(b"this is not a jpeg")
    dataset = json.loads((tiny_toyworld / "coco" / "dataset_coco.json").read_text())
    good = next(im for im in dataset["images"] if im["split"] == "train")
    sentences = good["sentences"]

    def extra(key, **fields):
        return {"split": "train", "cocoid": key, "filepath": "bad", "filename": f"{key}.jpg", "sentences": sentences,
                **fields}

    dataset["images"][1]["sentences"] = dataset["images"][1]["sentences"][:4] + [{"raw": "   "}]
    dataset["images"] += [
        extra("missing"),
        extra("corrupt"),
        extra("nameless", filename=None),
        extra("blank", filepath=good["filepath"], filename=good["filename"], sentences=[{"raw": ""}, {"raw": " "}]),
        extra("other_split", split="test"),
    ]
    (out / "dataset_coco.json").write_text(json.dumps(dataset))
    return {"json": out / "dataset_coco.json", "images": images}


def base_args(backbones, data, output_dir, **overrides):
    flags = {"train_json": data["json"], "split": "train", "image_root": data["images"],
             "clip_model": backbones / "clip", "bart_model": backbones / "bart", "output_dir": output_dir,
             "batch_size": 8, "learning_rate": 5e-2, "warmup_steps": 0, "num_unigrams": 60, "num_bigrams": 40,
             "seed": 0, "log_every": 1000} | overrides
    return [str(x) for key, value in flags.items() for x in (f"--{key}", value)]


def losses(output_dir) -> list[float]:
    return [json.loads(line)["loss"] for line in (Path(output_dir) / "losses.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(script, backbones, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    argv = base_args(backbones, data, out, max_steps=24, eval_split="eval", eval_max_images=6, eval_max_new_tokens=6,
                     eval_batch_size=4) + ["--custom_entries", "geoff hinton", "red"]
    assert script.main(argv) == 0
    return out, json.loads((out / "train_summary.json").read_text())


def test_loss_falls_and_the_summary_reports_the_run(trained):
    out, summary = trained
    values = losses(out)
    assert len(values) == summary["steps"] == 24
    assert np.mean(values[-5:]) < np.mean(values[:5]) - 0.03, values
    assert summary["top_k"] == 10 and summary["ln_targets"] == "faithful" and summary["train_images"] == 64
    assert summary["trainable_parameters"] == 2 * 32 * 3  # enc self-attn LN + enc final LN + dec cross-attn LN
    assert summary["eval_images"] == 6 and np.isfinite(summary["eval_loss"]) and summary["eval_cider_d"] >= 0
    tables = json.loads((out / "tables.json").read_text())["tables"]
    assert len(tables) == 64 and all(t.count(" | ") == 10 and t.endswith(" | ") for t in tables.values())


def test_bad_records_are_skipped_and_counted(trained):
    _, summary = trained
    bad = summary["bad_records"]
    assert bad["by_reason"] == {"EmptyCaption": 3, "NoCaptions": 1, "MissingField": 1, "ImageInputError": 2}, bad
    assert bad["skipped"] == 7
    joined = " ".join(e for group in bad["examples"].values() for e in group)
    assert "missing" in joined and "corrupt" in joined and "nameless" in joined and "blank" in joined


def test_only_the_faithful_layer_norms_differ_from_the_initial_backbones(trained, backbones):
    from transformers import BartForConditionalGeneration, CLIPModel

    from hf_captioners.antarctic import AntarcticForConditionalGeneration

    out, _ = trained
    final = AntarcticForConditionalGeneration.from_pretrained(out / "final")
    for prefix, initial in (("bart", BartForConditionalGeneration.from_pretrained(backbones / "bart")),
                            ("clip", CLIPModel.from_pretrained(backbones / "clip"))):
        after = getattr(final, prefix).state_dict()
        before = initial.state_dict()
        assert set(after) == set(before)
        changed = {name for name in before if not torch.equal(before[name], after[name])}
        # the release's rule: every BART parameter whose name holds both "layer_norm" and "encoder"
        targets = {name for name in before if prefix == "bart" and "layer_norm" in name and "encoder" in name}
        assert changed == targets, sorted(changed ^ targets)
        assert len(targets) == (6 if prefix == "bart" else 0)  # 1+1 layers: 2 encoder LNs + cross-attn LN, w + b
    assert not any(p.requires_grad for p in final.parameters())


def test_the_merged_final_folder_loads_with_automodel_and_the_pipeline(trained, tiny_toyworld):
    from PIL import Image
    from transformers import AutoModel, AutoProcessor, pipeline

    out, summary = trained
    final = out / "final"
    assert not (final / "adapter_config.json").exists()
    model = AutoModel.from_pretrained(final, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(final, trust_remote_code=True)
    assert len(model.cache) == summary["cache_entries"] and model.cache.entries[-1] == "geoff hinton"
    assert model.cache.entries.count("red") == 1  # a custom entry already in the cache is not added twice
    image = Image.open(next((tiny_toyworld / "images" / "eval").iterdir()))
    px = processor(images=[image])["pixel_values"]
    captions = model_pipeline(model, processor).caption_pixels(px, generate_kwargs={"max_new_tokens": 5})
    assert len(captions) == 1 and isinstance(captions[0], str)
    pipe = pipeline("image-to-text", model=str(final), trust_remote_code=True)
    assert pipe(image, max_new_tokens=5)[0]["generated_text"] == captions[0]


def test_training_decoder_start_is_checked_against_generation(script, trained):
    from hf_captioners.antarctic import AntarcticForConditionalGeneration, AntarcticProcessor

    out, _ = trained
    model = AntarcticForConditionalGeneration.from_pretrained(out / "final")
    processor = AntarcticProcessor.from_pretrained(out / "final")
    script.check_decoder_start(model, processor)
    # generation as the released model ran (bart-large's 2021 config had no forced_bos_token_id): no forced <s>
    model.generation_config.forced_bos_token_id = None
    with pytest.raises(ValueError, match="training would feed the decoder"):
        script.check_decoder_start(model, processor)


def test_resume_from_a_saved_model_on_coco_annotations(script, trained, tiny_toyworld, tmp_path):
    """--resume takes weights, processor and cache from a saved folder; COCO `captions_*.json` as the data."""
    from hf_captioners.antarctic import AntarcticConfig

    run_dir, summary = trained
    argv = ["--train_json", str(tiny_toyworld / "coco" / "captions_train.json"), "--image_root",
            str(tiny_toyworld / "images"), "--resume", str(run_dir / "final"), "--output_dir", str(tmp_path),
            "--top_k", "5", "--max_steps", "2", "--batch_size", "8", "--ln_targets", "encoder_only"]
    assert script.main(argv) == 0
    again = json.loads((tmp_path / "train_summary.json").read_text())
    assert again["cache_entries"] == summary["cache_entries"] and not (tmp_path / "cache").exists()
    assert again["train_images"] == 64 and again["bad_records"]["skipped"] == 0
    assert again["trainable_parameters"] == 2 * 32 * 2
    tables = json.loads((tmp_path / "tables.json").read_text())["tables"]
    assert all(t.count(" | ") == 5 for t in tables.values())
    assert AntarcticConfig.from_pretrained(tmp_path / "final").table_top_k == 5


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false"}


@pytest.mark.slow
def test_kill_after_a_checkpoint_and_resume_gives_the_uninterrupted_losses(script, trained, backbones, data, tmp_path):
    # the original release format for the cache: entries .txt + float32 .npy
    from safetensors.torch import load_file

    run_dir, _ = trained
    (tmp_path / "coco.txt").write_text((run_dir / "cache" / "entries.txt").read_text())
    np.save(tmp_path / "coco.npy", load_file(run_dir / "cache" / "cache.safetensors")["embeddings"].numpy())
    common = {"max_steps": 30, "batch_size": 4, "cache": tmp_path / "coco.txt"}  # 16 steps an epoch

    assert script.main(base_args(backbones, data, tmp_path / "a", **common)) == 0
    uninterrupted = losses(tmp_path / "a")
    assert len(uninterrupted) == 30

    argv = base_args(backbones, data, tmp_path / "b", checkpointing_steps=2, **common)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *argv], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (tmp_path / "b" / "checkpoints" / "step_2").exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert len(losses(tmp_path / "b")) < 30, "the run finished before it could be killed"
    assert not (tmp_path / "b" / "final").exists()

    assert script.main(argv + ["--resume_from_checkpoint", "latest"]) == 0
    resumed = losses(tmp_path / "b")
    assert len(resumed) == 30
    np.testing.assert_allclose(resumed, uninterrupted, rtol=0, atol=1e-6)
    summary = json.loads((tmp_path / "b" / "train_summary.json").read_text())
    assert summary["cache_entries"] == len((tmp_path / "coco.txt").read_text().splitlines())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_real_cpu_processes_complete_and_their_checkpoint_loads(script, backbones, data, tmp_path):
    from safetensors.torch import load_file

    from hf_captioners.antarctic import AntarcticForConditionalGeneration

    out = tmp_path / "ddp"
    argv = base_args(backbones, data, out, max_steps=4, checkpointing_steps=2, batch_size=4)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), str(SCRIPT)]
    result = subprocess.run(launch + argv, env=_env(), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "train_antarctic: 4 steps" in result.stdout
    checkpoint = out / "checkpoints" / "step_4"
    assert (checkpoint / "random_states_0.pkl").exists() and (checkpoint / "random_states_1.pkl").exists()
    two_process_losses = losses(out)
    assert len(two_process_losses) == 4

    final = AntarcticForConditionalGeneration.from_pretrained(out / "final")
    state = load_file(checkpoint / "model.safetensors")
    tuned = {k: v for k, v in state.items() if ".ln_tuning_layers.default." in k}
    assert len(tuned) == 6
    for key, value in tuned.items():
        name = key.removeprefix("base_model.model.").replace(".ln_tuning_layers.default", "")
        assert torch.equal(final.state_dict()[name], value), name

    # one process picks the two-process checkpoint up with accelerate's load_state and trains on
    argv = base_args(backbones, data, out, max_steps=6, checkpointing_steps=2, batch_size=4)
    assert script.main(argv + ["--resume_from_checkpoint", "latest"]) == 0
    assert losses(out)[:4] == two_process_losses and len(losses(out)) == 6
