"""`hf-captioners caption-shards` with real (tiny) saved captioners: single process, two processes, resume,
exit status for unreadable shards, records without alt-text; and the command's one-line operator errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest
import torch

from hf_captioners.data.shards import expand_shard_specs
from hf_captioners.recaption.engine import caption_shards, shard_outputs


def _keys(shards):
    keys = set()
    for shard in shards:
        with tarfile.open(shard) as tar:
            keys |= {n.rsplit(".", 1)[0] for n in tar.getnames()}
    return keys


def _cli(*args, env_extra=None, launcher=()):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
    return subprocess.run([*launcher, "-m", "hf_captioners.commands", "caption-shards", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_cli_captions_every_record_and_resumes(altogether_dir, tiny_toyworld, tmp_path):
    pattern = str(tiny_toyworld / "shards" / "train-{000000..000003}.tar")
    shards = expand_shard_specs(pattern)
    cut = tmp_path / "cut-000000.tar"
    data = open(shards[0], "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    first = _cli(altogether_dir, pattern, cut, "--out", out, "--batch-size", "8", "--num-workers", "1",
                 "--extra-formats", "jsonl", "--no-progress", launcher=(sys.executable,))
    assert first.returncode == 1, first.stderr[-3000:]  # a shard is unfinished: the exit status says so
    assert first.stdout.strip().splitlines()[-1].startswith("caption-shards: 4 shards done, 0 skipped, 1 failed")
    assert "Traceback" not in first.stderr and "cut-000000.tar" in first.stderr
    captions = {}
    for shard in shards:
        captions |= json.loads(shard_outputs(out, shard)["json"].read_text())
    assert set(captions) == _keys(shards)
    assert all(set(v) == {"altogether"} and isinstance(v["altogether"], str) for v in captions.values())
    assert not shard_outputs(out, str(cut))["json"].exists() and shard_outputs(out, str(cut))["partial"].exists()

    # (a rerun without the option retries the cut shard: tests/test_recaption_engine.py)
    accepted = _cli(altogether_dir, pattern, cut, "--out", out, "--no-progress", "--accept-partial",
                    launcher=(sys.executable,))
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    assert "1 shards done (1 partial, accepted), 4 skipped, 0 failed" in accepted.stdout
    assert 0 < len(json.loads(shard_outputs(out, str(cut))["json"].read_text())) < 16


def test_engine_output_equals_model_generate(altogether_dir, tiny_toyworld, tmp_path):
    """The data path (workers, per-record preprocessing, collation) must not change what the model says."""
    from PIL import Image
    from transformers import AutoModel, AutoProcessor

    from hf_captioners.data.shards import iter_shard_records
    from hf_captioners.recaption.adapters import load_captioner

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


def test_packed_weights_caption_as_the_stock_layers_do(altogether_dir, tiny_toyworld, tmp_path):
    from hf_captioners.recaption.adapters import load_captioner

    shard = str(tiny_toyworld / "shards" / "train-000001.tar")
    caption_shards(load_captioner(str(altogether_dir)), [shard], tmp_path / "stock", batch_size=8, num_workers=0,
                   progress=False)
    packed = load_captioner(str(altogether_dir), pack_weights=True)
    linears = [m for m in packed.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all("forward" in m.__dict__ for m in linears)
    run = subprocess.run([sys.executable, "-m", "hf_captioners.commands", "--log-level", "INFO", "caption-shards",
                          str(altogether_dir), shard, "--out", str(tmp_path / "packed"), "--pack-weights", "--cpu",
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"packed {len(linears)} linear layers" in run.stderr
    stock = json.loads(shard_outputs(tmp_path / "stock", shard)["json"].read_text())
    assert json.loads(shard_outputs(tmp_path / "packed", shard)["json"].read_text()) == stock and len(stock) == 16


def test_records_without_alt_text_are_captioned_with_an_empty_prompt(altogether_dir, tmp_path):
    """As the original infer.py captions records whose `texts` is empty (Altogether trains with prompt dropout)."""
    import io

    from PIL import Image
    from transformers import AutoModel, AutoProcessor

    from hf_captioners.recaption.adapters import load_captioner

    def png(colour):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    metas = {"emptylist": b'{"texts": []}', "nofield": b'{"url": "u"}', "blank": b'{"texts": [["alt", " "]]}',
             "imageonly": None, "withalt": b'{"texts": [["alt", "a red square"]]}'}
    shard = tmp_path / "noalt-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for i, (key, meta) in enumerate(metas.items()):
            for name, data in ((f"{key}.png", png((40 * i, 200 - 30 * i, 90))), (f"{key}.json", meta)):
                if data is not None:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    summary = caption_shards(load_captioner(str(altogether_dir)), [str(shard)], out, batch_size=2, num_workers=0,
                             extra_formats=("jsonl",), progress=False)
    assert (summary.captioned, summary.errors) == (5, 0)
    got = json.loads(shard_outputs(out, str(shard))["json"].read_text())

    model = AutoModel.from_pretrained(altogether_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(altogether_dir, trust_remote_code=True)
    images = [Image.new("RGB", (40, 30), (40 * i, 200 - 30 * i, 90)) for i in range(len(metas))]
    alt_text = [None, None, None, None, ["a red square"]]
    empty = processor(images=images, alt_text=[""] * 4 + [["a red square"]], return_tensors="pt")
    inputs = processor(images=images, alt_text=alt_text, return_tensors="pt")
    assert torch.equal(empty["input_ids"], inputs["input_ids"])  # no alt-text: the prompt is all padding
    with torch.inference_mode():
        expected = processor.batch_decode(model.generate(**inputs))
    assert got == {key: {"altogether": caption} for key, caption in zip(metas, expected)}
    rows = [json.loads(line) for line in shard_outputs(out, str(shard))["jsonl"].read_text().splitlines()]
    assert {r["key"] for r in rows if r["no_alt_text"]} == set(metas) - {"withalt"}


@pytest.fixture()
def fake_model_dir(tmp_path):
    """Enough of a model folder for the checks made before loading (config.json only)."""
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "bert"}')
    return path


def _operator_cases(tmp, model, shards_root):
    shard = str(shards_root / "train-000000.tar")
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    for folder in ("a", "b"):
        (tmp / folder / "x.tar").write_bytes(open(shard, "rb").read())
    (tmp / "afile").write_text("not a folder")
    (tmp / "noconfig").mkdir()
    out = str(tmp / "out")
    return {
        "missing model folder": ([str(tmp / "no" / "such" / "model"), shard, "--out", out], "does not exist"),
        "model folder without config": ([str(tmp / "noconfig"), shard, "--out", out], "no config.json"),
        "glob matching nothing": ([model, str(shards_root / "nope-*.tar"), "--out", out], "matches no file"),
        "brace pattern matching nothing": ([model, str(tmp / "t-{000..009}.tar"), "--out", out], "matches no file"),
        "missing shard list": ([model, "@" + str(tmp / "list.txt"), "--out", out], "shard list"),
        "output names collide": ([model, str(tmp / "a" / "x.tar"), str(tmp / "b" / "x.tar"), "--out", out], "separate output folders"),
        "out dir is a file": ([model, shard, "--out", str(tmp / "afile")], "is a file"),
        "out dir under a file": ([model, shard, "--out", str(tmp / "afile" / "out")], "cannot create the output folder"),
        "unknown extra format": ([model, shard, "--out", out, "--extra-formats", "csv"], "choose from jsonl,parquet"),
    }


def test_operator_errors_end_with_one_line_and_status_2(fake_model_dir, tiny_toyworld, tmp_path):
    cases = _operator_cases(tmp_path, str(fake_model_dir), tiny_toyworld / "shards")
    for name, (args, expected) in cases.items():
        result = _cli(*args, launcher=(sys.executable,))
        assert result.returncode == 2, (name, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, name
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("caption-shards: error: ") and expected in last, (name, last)
    assert not (tmp_path / "out").exists()  # nothing was written for any of them


def test_operator_error_traceback_only_with_debug(tiny_toyworld, tmp_path):
    shard = str(tiny_toyworld / "shards" / "train-000000.tar")
    missing = str(tmp_path / "no" / "such" / "model")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    debug = subprocess.run([sys.executable, "-m", "hf_captioners.commands", "--log-level", "DEBUG", "caption-shards",
                            missing, shard, "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env,
                           timeout=120)
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("caption-shards: error: model folder")


def test_a_folder_that_loads_no_captioner_is_an_operator_error(fake_model_dir, tiny_toyworld, tmp_path, monkeypatch, capsys):
    """Past the cheap checks, a model that does not load still ends in one line and status 2 (in-process: the
    process group is stubbed, so this pytest process never becomes an accelerate process)."""
    import accelerate

    from hf_captioners.commands import main

    class OneProcess:
        def __init__(self, cpu=False):
            self.device = "cpu"

    monkeypatch.setattr(accelerate, "PartialState", OneProcess)
    shard = str(tiny_toyworld / "shards" / "train-000000.tar")
    assert main(["caption-shards", str(fake_model_dir), shard, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"caption-shards: error: cannot load the model {str(fake_model_dir)!r}")


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
