"""The re-captioning engine with a stand-in captioner: formats, resume, rank split, bad records, kill -9."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from PIL import Image

from hf_captioners.recaption import (
    caption_shards,
    expand_shard_specs,
    iter_shard_records,
    prepare_alt_texts,
    shard_outputs,
    shards_for_rank,
)

sys.path.insert(0, str(Path(__file__).parent))
from recaption_fakes import FakeCaptioner  # noqa: E402


def _shard_keys(shard: str) -> list[str]:
    with tarfile.open(shard) as tar:
        return sorted({name.rsplit(".", 1)[0] for name in tar.getnames()})


def _tar(path: Path, members: list[tuple[str, bytes]]) -> str:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def _png(size=(8, 8), colour=(10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _texts(*texts) -> bytes:
    return json.dumps({"texts": [["alt", t] for t in texts]}).encode()


@pytest.fixture()
def shards(tiny_toyworld):
    return expand_shard_specs(str(tiny_toyworld / "shards" / "train-{000000..000003}.tar"))


def test_every_record_captioned_once_in_the_original_format(shards, tmp_path):
    captioner = FakeCaptioner()
    summary = caption_shards(captioner, shards, tmp_path, batch_size=5, num_workers=2, extra_formats=("jsonl",), progress=False)
    assert (summary.shards_done, summary.records, summary.captioned, summary.errors) == (4, 64, 64, 0)
    assert max(captioner.batches) == 5
    for shard in shards:
        outputs = shard_outputs(tmp_path, shard)
        result = json.loads(outputs["json"].read_text())
        assert sorted(result) == _shard_keys(shard)
        assert all(set(v) == {"fake"} and "@" in v["fake"] for v in result.values())
        rows = [json.loads(line) for line in outputs["jsonl"].read_text().splitlines()]
        assert {r["key"] for r in rows} == set(result)
        assert all(r["fake"].startswith("; ".join(r["alt_texts"])) for r in rows)
        assert outputs["errors"].read_text() == ""
    assert not list(tmp_path.glob(".*.tmp"))


def test_finished_shards_are_skipped_on_restart(shards, tmp_path):
    caption_shards(FakeCaptioner(), shards[:2], tmp_path, num_workers=0, progress=False)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    summary = caption_shards(FakeCaptioner(), shards, tmp_path, num_workers=0, progress=False)
    assert (summary.shards_skipped, summary.shards_done, summary.captioned) == (2, 2, 32)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


def test_ranks_cover_all_shards_without_overlap(shards):
    parts = [shards_for_rank(shards, r, 3) for r in range(3)]
    flat = [s for part in parts for s in part]
    assert sorted(flat) == sorted(shards) and len(flat) == len(set(flat))
    with pytest.raises(ValueError, match="rank 3 outside"):
        shards_for_rank(shards, 3, 3)


def test_shard_specs(tiny_toyworld, tmp_path):
    root = tiny_toyworld / "shards"
    globbed = expand_shard_specs(str(root / "train-*.tar"))
    braced = expand_shard_specs(str(root / "train-{000000..000003}.tar"))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(braced) + "\n")
    assert globbed == braced == expand_shard_specs("@" + str(listing)) == expand_shard_specs(braced + braced[:1])
    with pytest.raises(FileNotFoundError, match="matches no file"):
        expand_shard_specs(str(root / "nope-*.tar"))


def test_alt_texts_are_deduplicated_in_order():
    assert prepare_alt_texts(["b", " a ", "b", "", "a\n", "c  d"]) == ["b", "a", "c d"]


def test_bad_records_go_to_the_sidecar_and_the_run_goes_on(tmp_path):
    big = _png(size=(300, 300))
    shard = _tar(
        tmp_path / "bad-000000.tar",
        [
            ("good.png", _png()), ("good.json", _texts("a red circle", "a red circle")),
            ("corrupt.jpeg", b"\xff\xd8not really a jpeg"), ("corrupt.json", _texts("x")),
            ("empty.jpg", b""), ("empty.json", _texts("y")),
            ("nojson.png", _png()),
            ("badjson.png", _png()), ("badjson.json", b"\xff\xfe{not json"),
            ("bomb.png", big), ("bomb.json", _texts("huge")),
            ("textonly.txt", b"plain alt"), ("textonly.png", _png(colour=(1, 2, 3))),
        ],
    )
    out = tmp_path / "out"
    summary = caption_shards(FakeCaptioner(), [shard], out, num_workers=0, max_pixels=200 * 200, progress=False)
    result = json.loads(shard_outputs(out, shard)["json"].read_text())
    assert sorted(result) == ["good", "textonly"]
    assert result["good"]["fake"].startswith("a red circle @")
    assert result["textonly"]["fake"].startswith("plain alt @")
    errors = {e["key"]: e["error"] for e in map(json.loads, shard_outputs(out, shard)["errors"].read_text().splitlines())}
    assert set(errors) == {"corrupt", "empty", "nojson", "badjson", "bomb"}
    assert "not a readable image" in errors["corrupt"]
    assert "0 bytes" in errors["empty"]
    assert "alt-text" in errors["nojson"] and "alt-text" in errors["badjson"]
    assert "exceeds the limit" in errors["bomb"]
    assert (summary.records, summary.captioned, summary.errors, summary.shards_failed) == (7, 2, 5, 0)


def test_truncated_tar_is_reported_and_its_readable_part_processed(shards, tmp_path):
    data = Path(shards[0]).read_bytes()
    cut = tmp_path / "cut-000000.tar"
    cut.write_bytes(data[: len(data) // 2 + 100])
    records = list(iter_shard_records(str(cut)))
    end = records[-1]
    assert end.error and "truncated" in end.error
    summary = caption_shards(FakeCaptioner(), [str(cut)], tmp_path / "out", num_workers=0, progress=False)
    result = json.loads(shard_outputs(tmp_path / "out", str(cut))["json"].read_text())
    assert 4 <= len(result) < 16 and summary.shards_failed == 1
    errors = shard_outputs(tmp_path / "out", str(cut))["errors"].read_text()
    assert "corrupt or truncated tar" in errors


def test_kill_minus_nine_then_resume_gives_exactly_one_caption_per_record(shards, tmp_path):
    pattern = str(Path(shards[0]).parent / "train-{000000..000003}.tar")
    out = tmp_path / "out"
    script = Path(__file__).parent / "recaption_fakes.py"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(script), pattern, str(out), "0.15"], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("train-*.json")):
        time.sleep(0.05)
    time.sleep(0.3)  # now mid-way through a later shard
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = sorted(p.name for p in out.glob("train-*.json"))
    assert 1 <= len(finished_before) < 4, "the kill must land mid-run"
    for path in out.glob("train-*.json"):
        json.loads(path.read_text())  # every visible output is complete

    resumed = subprocess.run([sys.executable, str(script), pattern, str(out), "0"], env=env, capture_output=True, text=True, check=True)
    assert f"{len(finished_before)} skipped" in resumed.stdout
    clean = tmp_path / "clean"
    caption_shards(FakeCaptioner(), shards, clean, num_workers=0, progress=False)
    for shard in shards:
        got = json.loads(shard_outputs(out, shard)["json"].read_text())
        assert got == json.loads(shard_outputs(clean, shard)["json"].read_text())
    assert not list(out.glob(".*.tmp"))
