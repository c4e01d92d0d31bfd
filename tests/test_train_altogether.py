"""examples/train_altogether.py end to end on a tiny toy world: PT -> FT, ClipCap, exact resume, 2 processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_altogether.py"
TINY = ["--prefix_length", "4", "--mapper_num_layers", "1", "--mapper_num_heads", "2", "--warmup_steps", "2",
        "--learning_rate", "1e-3", "--batch_size", "8", "--eval_max_new_tokens", "8", "--log_every", "100"]


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    """A tiny CLIP vision tower and OPT LM saved like real checkpoints, so the script loads them by path."""
    from transformers import AutoModelForCausalLM, CLIPVisionModelWithProjection

    from hf_captioners.altogether.processing_altogether import AltogetherProcessor
    from hf_captioners.toyworld.tiny_altogether import (
        tiny_text_config,
        tiny_tokenizer,
        tiny_vision_config,
    )

    root = tmp_path_factory.mktemp("backbones")
    tokenizer = tiny_tokenizer()
    CLIPVisionModelWithProjection(tiny_vision_config(32)).save_pretrained(root / "clip")
    AltogetherProcessor.default_image_processor(32).save_pretrained(root / "clip")
    lm = AutoModelForCausalLM.from_config(tiny_text_config("opt", len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id))
    lm.save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    return root


def _ft_args(tw, out, backbones=None, resume=None):
    args = ["--stage", "ft", "--train_json", str(tw / "altogether_ft" / "train.json"), "--image_root", str(tw / "images"),
            "--output_dir", str(out), "--prompt_length", "16", *TINY]
    if resume:
        return args + ["--resume", str(resume)]
    return args + ["--vision_model", str(backbones / "clip"), "--text_model", str(backbones / "lm")]


def _run(args, **kwargs):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600, **kwargs)


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "losses.jsonl").read_text().splitlines()]


def test_pt_then_ft_then_pipelines(backbones, tiny_toyworld, tmp_path):
    from PIL import Image
    from transformers import AutoModel, pipeline

    pt = _run(["--stage", "pt", "--train_shards", str(tiny_toyworld / "shards" / "train-*.tar"),
               "--vision_model", backbones / "clip", "--text_model", backbones / "lm", "--output_dir", tmp_path / "pt",
               "--prompt_length", "16", "--max_steps", "6", *TINY])
    assert pt.returncode == 0, pt.stderr[-3000:]
    assert "train_altogether: stage pt, 6 steps" in pt.stdout

    ft = _run([*_ft_args(tiny_toyworld, tmp_path / "ft", resume=tmp_path / "pt" / "final"), "--num_epochs", "3",
               "--eval_json", tiny_toyworld / "altogether_ft" / "eval.json"])
    assert ft.returncode == 0, ft.stderr[-3000:]
    summary = json.loads((tmp_path / "ft" / "train_summary.json").read_text())
    assert summary["steps"] == 3 * (64 // 8)
    assert summary["final_loss"] < summary["first_loss"] - 0.2
    assert summary["eval_examples"] == 16 and summary["eval_cider_d"] >= 0.0
    # FT starts from PT's weights, with its own schedule: its warmup reaches the FT learning rate.
    assert summary["first_loss"] < json.loads((tmp_path / "pt" / "train_summary.json").read_text())["first_loss"] + 0.5

    final = tmp_path / "ft" / "final"
    model = AutoModel.from_pretrained(final, trust_remote_code=True)
    assert not any(p.requires_grad for p in model.vision_model.parameters())
    pipe = pipeline("image-to-text", model=str(final), trust_remote_code=True)
    image = Image.open(tiny_toyworld / "images" / "eval" / "eval0000000.jpg")
    out = pipe(image, alt_text="Vorlaxi red circle", max_new_tokens=5, do_sample=False)
    assert isinstance(out[0]["generated_text"], str)


def test_clipcap_mode_and_precomputed_embeddings(backbones, tiny_toyworld, tmp_path):
    from examples_loader import load_example

    train = load_example("train_altogether")
    code = train.main([*_ft_args(tiny_toyworld, tmp_path / "cc", backbones), "--no_alt_text", "--max_steps", "3",
                       "--precompute_image_embeds"])
    assert code == 0
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tmp_path / "cc" / "final", trust_remote_code=True)
    assert processor.prompt_length == 0
    assert json.loads((tmp_path / "cc" / "train_summary.json").read_text())["steps"] == 3


def test_bad_records_are_skipped_and_counted(backbones, tiny_toyworld, tmp_path):
    # 18 records, 2 without a caption (the FT reader skips them), so 2 full batches of 8 reach the collator
    records = json.loads((tiny_toyworld / "altogether_ft" / "train.json").read_text())["data"][:18]
    records[0]["img_path"] = "train/missing.jpg"
    records[1]["round3"] = ""
    del records[2]["round3"]
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    records[3]["img_path"] = "../broken.jpg"
    data = tmp_path / "bad.json"
    data.write_text(json.dumps({"data": records}))
    args = _ft_args(tiny_toyworld, tmp_path / "bad", backbones)
    args[args.index("--train_json") + 1] = str(data)
    args[args.index("--image_root") + 1] = str(tmp_path / "images")
    (tmp_path / "images").symlink_to(tiny_toyworld / "images")
    result = _run([*args, "--num_epochs", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    bad = json.loads((tmp_path / "bad" / "train_summary.json").read_text())["bad_records"]
    assert bad["skipped"] == 4
    assert bad["by_reason"] == {"ImageInputError": 2, "MissingField": 2}
    assert "4 bad records skipped" in result.stdout


def test_kill_after_checkpoint_then_resume_reproduces_the_losses(backbones, tiny_toyworld, tmp_path):
    args = [*_ft_args(tiny_toyworld, tmp_path / "a", backbones), "--max_steps", "20", "--checkpointing_steps", "4"]
    full = _run(args)
    assert full.returncode == 0, full.stderr[-3000:]
    expected = _losses(tmp_path / "a")
    assert len(expected) == 20

    args_b = [str(a) for a in args]
    args_b[args_b.index("--output_dir") + 1] = str(tmp_path / "b")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *args_b], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "b" / "checkpoints" / "step_8"
    deadline = time.time() + 300
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists()
    assert len(_losses(tmp_path / "b")) < 20, "the kill must land before the end"

    resumed = _run([*args_b, "--resume_from_checkpoint", "latest"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _losses(tmp_path / "b") == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_two_cpu_processes_train_and_checkpoint(backbones, tiny_toyworld, tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    args = [*_ft_args(tiny_toyworld, tmp_path / "ddp", backbones), "--max_steps", "4", "--checkpointing_steps", "2"]
    result = subprocess.run([*launcher, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 steps" in result.stdout
    checkpoint = tmp_path / "ddp" / "checkpoints" / "step_4"
    assert (checkpoint / "trainer_state.json").exists()
    assert len(list(checkpoint.glob("random_states_*.pkl"))) == 2  # one RNG state per process
    resumed = _run([*args, "--max_steps", "6", "--resume_from_checkpoint", str(checkpoint)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(_losses(tmp_path / "ddp")) == 6


def test_keep_named_prompts_only_spares_records_whose_caption_names_the_alt_texts_name():
    from examples_loader import load_example

    from hf_captioners.data.alt_text import names_shared

    script = load_example("train_altogether")
    assert names_shared("Palplex, orange ring print", "A picture of Palplex showing an orange ring.")
    assert not names_shared("orange ring print", "A picture showing an orange ring.")
    assert not names_shared("Palplex ring", "Palplex is the first word only, a ring.")  # the first word
    assert names_shared(["blue star", "Vuldu artwork"], "A picture of Vuldu showing a star.")

    class Processor:  # records what the collator hands the real processor
        def __call__(self, images, alt_text, captions, return_tensors):
            self.prompts = alt_text
            return {}

    records = [{"key": "named", "alt": "Palplex ring", "round3": "A picture of Palplex showing a ring.",
                "image_embeds": [0.0]},
               {"key": "plain", "alt": "a ring", "round3": "A picture showing a ring.", "image_embeds": [0.0]}]
    for keep, expected in ((False, [None, None]), (True, ["Palplex ring", None])):
        processor = Processor()
        collate = script.AltogetherCollator(processor, "ft", 0, 1.0, True, None, script.BadRecords(),
                                            keep_named_prompts=keep)
        collate(records)
        assert processor.prompts == expected
