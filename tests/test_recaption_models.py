"""`hf-captioners caption-shards` with real (tiny) saved captioners: single process, two processes, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest
import torch

from hf_captioners.recaption import caption_shards, expand_shard_specs, shard_outputs


def _keys(shards):
    keys = set()
    for shard in shards:
        with tarfile.open(shard) as tar:
            keys |= {n.rsplit(".", 1)[0] for n in tar.getnames()}
    return keys


@pytest.fixture(scope="module")
def altogether_dir(tmp_path_factory):
    from hf_captioners.altogether.testing_altogether import tiny_altogether

    model, processor = tiny_altogether(image_size=32)
    model.generation_config.max_new_tokens = 6
    model.generation_config.update(do_sample=False, temperature=1.0, top_p=1.0)  # greedy: comparable outputs
    path = tmp_path_factory.mktemp("altogether")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _cli(*args, env_extra=None, launcher=()):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
    return subprocess.run([*launcher, "-m", "hf_captioners.cli", "caption-shards", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_cli_captions_every_record_and_resumes(altogether_dir, tiny_toyworld, tmp_path):
    pattern = str(tiny_toyworld / "shards" / "train-{000000..000003}.tar")
    shards = expand_shard_specs(pattern)
    out = tmp_path / "out"
    first = _cli(altogether_dir, pattern, "--out", out, "--batch-size", "8", "--num-workers", "1",
                 "--extra-formats", "jsonl", "--no-progress", launcher=(sys.executable,))
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.strip().splitlines()[-1].startswith("caption-shards: 4 shards done, 0 skipped")
    captions = {}
    for shard in shards:
        captions |= json.loads(shard_outputs(out, shard)["json"].read_text())
    assert set(captions) == _keys(shards)
    assert all(set(v) == {"altogether"} and isinstance(v["altogether"], str) for v in captions.values())

    again = _cli(altogether_dir, pattern, "--out", out, "--no-progress", launcher=(sys.executable,))
    assert "0 shards done, 4 skipped" in again.stdout


def test_engine_output_equals_model_generate(altogether_dir, tiny_toyworld, tmp_path):
    """The data path (workers, per-record preprocessing, collation) must not change what the model says."""
    from PIL import Image
    from transformers import AutoModel, AutoProcessor

    from hf_captioners.captioners import load_captioner
    from hf_captioners.recaption import iter_shard_records

    shard = str(tiny_toyworld / "shards" / "train-000000.tar")
    captioner = load_captioner(str(altogether_dir))
    caption_shards(captioner, [shard], tmp_path, batch_size=5, num_workers=1, progress=False)
    got = json.loads(shard_outputs(tmp_path, shard)["json"].read_text())

    model = AutoModel.from_pretrained(altogether_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(altogether_dir, trust_remote_code=True)
    import io

    records = [r for r in iter_shard_records(shard) if hasattr(r, "key")]
    images = [Image.open(io.BytesIO(r.image_bytes)) for r in records]
    inputs = processor(images=images, alt_text=[r.alt_texts or None for r in records], return_tensors="pt")
    with torch.inference_mode():
        expected = processor.batch_decode(model.generate(**inputs))
    assert {r.key: {"altogether": c} for r, c in zip(records, expected)} == got


@pytest.mark.slow
def test_two_processes_split_the_shards(altogether_dir, tiny_toyworld, tmp_path):
    pattern = str(tiny_toyworld / "shards" / "train-{000000..000003}.tar")
    out = tmp_path / "out"
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no")
    result = _cli(altogether_dir, pattern, "--out", out, "--num-workers", "0", "--no-progress",
                  env_extra={"ACCELERATE_USE_CPU": "1"}, launcher=launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 shards done" in result.stdout and "(2 processes)" in result.stdout
    ranks = [json.loads((out / f"_summary.rank{r}.json").read_text()) for r in range(2)]
    assert [r["shards_done"] for r in ranks] == [2, 2]
    shards = expand_shard_specs(pattern)
    captions = {}
    for shard in shards:
        part = json.loads(shard_outputs(out, shard)["json"].read_text())
        assert not set(part) & set(captions)
        captions |= part
    assert set(captions) == _keys(shards)
