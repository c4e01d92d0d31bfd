"""The re-captioning engine with a stand-in captioner: formats, resume, rank split, bad records and shards, kill -9."""

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

from hf_captioners.data.alt_text import prepare_alt_texts
from hf_captioners.data.shards import expand_shard_specs, iter_shard_records
from hf_captioners.recaption.engine import caption_shards, shard_outputs, shards_for_rank

sys.path.insert(0, str(Path(__file__).parent))
from recaption_fakes import FakeCaptioner, PickyCollateCaptioner  # noqa: E402


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


def _errors(out, shard) -> dict[str, str]:
    entries = [json.loads(line) for line in shard_outputs(out, shard)["errors"].read_text().splitlines()]
    assert all(e["shard"] == shard for e in entries)
    return {e["key"]: e["error"] for e in entries}


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
    assert sorted(result) == ["good", "nojson", "textonly"]  # an image alone is a record without alt-text
    assert result["good"]["fake"].startswith("a red circle @")
    assert result["textonly"]["fake"].startswith("plain alt @")
    assert result["nojson"]["fake"].startswith(" @")
    errors = _errors(out, shard)
    assert set(errors) == {"corrupt", "empty", "badjson", "bomb"}
    assert "not a readable image" in errors["corrupt"]
    assert "0 bytes" in errors["empty"]
    assert "alt-text" in errors["badjson"]
    assert "exceeds the limit" in errors["bomb"]
    assert (summary.records, summary.captioned, summary.errors, summary.shards_failed) == (7, 3, 4, 0)


def test_json_of_another_shape_is_that_records_error_and_the_worker_goes_on(tmp_path):
    """Valid json of the wrong shape used to raise inside a DataLoader worker and end the whole run."""
    image = _png()
    hostile = {
        "alist": b"[1, 2]", "null": b"null", "number": b"42", "string": b'"a bare string"',
        "one_element": b'{"texts": [["alt"]]}', "non_string": b'{"texts": [["alt", 5]]}',
        "null_text": b'{"texts": [["alt", null]]}', "texts_dict": b'{"texts": {"alt": "x"}}',
        "texts_number": b'{"texts": 3}', "deep": b"[" * 100_000 + b"]" * 100_000,
    }
    members = [(f"{key}.{ext}", data) for key, meta in hostile.items() for ext, data in (("png", image), ("json", meta))]
    members += [("plain.png", image), ("plain.json", b'{"texts": "a plain  alt-text"}'),
                ("mixed.png", image), ("mixed.json", b'{"texts": ["bare", ["alt", "pair", 0.9]]}'),
                ("poisoned.png", image), ("poisoned.json", _texts("poison")),
                ("good.png", image), ("good.json", _texts("fine"))]
    bad = _tar(tmp_path / "hostile-000000.tar", members)
    after = _tar(tmp_path / "after-000000.tar", [("k.png", image), ("k.json", _texts("next shard"))])
    out = tmp_path / "out"
    summary = caption_shards(PickyCollateCaptioner(), [bad, after], out, batch_size=4, num_workers=1, progress=False)
    assert (summary.shards_done, summary.shards_failed) == (2, 0)
    result = json.loads(shard_outputs(out, bad)["json"].read_text())
    assert sorted(result) == ["good", "mixed", "plain"]
    assert result["plain"]["fake"].startswith("a plain alt-text @")  # one alt-text, not one per character
    assert result["mixed"]["fake"].startswith("bare; pair @")
    errors = _errors(out, bad)
    assert set(errors) == set(hostile) | {"poisoned"}
    assert all("alt-text" in errors[key] for key in hostile)
    assert "not an object" in errors["alist"] and "null" in errors["null"]
    assert "1 element" in errors["one_element"] and "not a string" in errors["non_string"]
    assert "collation failed" in errors["poisoned"]
    assert json.loads(shard_outputs(out, after)["json"].read_text())["k"]["fake"].startswith("next shard @")


@pytest.mark.parametrize("batch_size", [1, 8])
def test_a_key_twice_in_one_tar_is_an_error_not_a_merge(tmp_path, batch_size):
    red, blue = _png(colour=(255, 0, 0)), _png(colour=(0, 0, 255))
    shard = _tar(
        tmp_path / "dups-000000.tar",
        [
            ("apart.png", red), ("apart.json", _texts("first")),
            ("other.png", red), ("other.json", _texts("other")),
            ("apart.png", blue), ("apart.json", _texts("second")),  # the key again, later in the tar
            ("adjacent.png", red), ("adjacent.json", _texts("one")),
            ("adjacent.png", blue), ("adjacent.json", _texts("two")),  # the key again, right after
            ("thrice.png", red), ("thrice.json", b"null"), ("thrice.png", red), ("thrice.png", red),
        ],
    )
    out = tmp_path / "out"
    summary = caption_shards(FakeCaptioner(), [shard], out, batch_size=batch_size, num_workers=0, progress=False)
    assert list(json.loads(shard_outputs(out, shard)["json"].read_text())) == ["other"]
    lines = shard_outputs(out, shard)["errors"].read_text().splitlines()
    assert len(lines) == 3  # one error per key, whatever the first sample's own fate
    errors = _errors(out, shard)
    assert set(errors) == {"apart", "adjacent", "thrice"}
    assert all("duplicate key" in e for e in errors.values()) and "3 samples" in errors["thrice"]
    assert (summary.records, summary.captioned, summary.errors) == (8, 1, 3)  # records: samples read


def test_records_without_alt_text_are_captioned_with_an_empty_prompt(tmp_path):
    image = _png()
    shard = _tar(
        tmp_path / "noalt-000000.tar",
        [
            ("emptylist.png", image), ("emptylist.json", b'{"texts": []}'),
            ("nofield.png", image), ("nofield.json", b'{"url": "http://x"}'),
            ("nulltexts.png", image), ("nulltexts.json", b'{"texts": null}'),
            ("blank.png", image), ("blank.json", _texts("", "  ")),
            ("imageonly.png", image),
            ("withalt.png", image), ("withalt.json", _texts("a dog")),
        ],
    )
    out = tmp_path / "out"
    summary = caption_shards(FakeCaptioner(), [shard], out, num_workers=0, extra_formats=("jsonl", "parquet"), progress=False)
    assert (summary.captioned, summary.errors) == (6, 0)
    result = json.loads(shard_outputs(out, shard)["json"].read_text())
    assert all(result[k]["fake"].startswith(" @") for k in ("emptylist", "nofield", "nulltexts", "blank", "imageonly"))
    rows = {r["key"]: r for r in map(json.loads, shard_outputs(out, shard)["jsonl"].read_text().splitlines())}
    assert {k for k, r in rows.items() if r["no_alt_text"]} == set(result) - {"withalt"}
    assert all(r["alt_texts"] == [] for k, r in rows.items() if k != "withalt")
    assert rows["withalt"]["alt_texts"] == ["a dog"] and rows["withalt"]["no_alt_text"] is False

    import pyarrow.parquet as pq

    table = pq.read_table(shard_outputs(out, shard)["parquet"])
    assert str(table.schema.field("alt_texts").type) == "list<element: string>"
    assert {r["key"]: r["no_alt_text"] for r in table.to_pylist()} == {k: r["no_alt_text"] for k, r in rows.items()}


def test_truncated_tar_is_reported_and_its_readable_part_kept_as_partial(shards, tmp_path):
    data = Path(shards[0]).read_bytes()
    cut = tmp_path / "cut-000000.tar"
    cut.write_bytes(data[: len(data) // 2 + 100])
    records = list(iter_shard_records(str(cut)))
    end = records[-1]
    assert end.error and "truncated" in end.error
    out = tmp_path / "out"
    summary = caption_shards(FakeCaptioner(), [str(cut)], out, num_workers=0, progress=False)
    outputs = shard_outputs(out, str(cut))
    assert not outputs["json"].exists(), "a shard not read to its end must not look finished"
    partial = json.loads(outputs["partial"].read_text())
    assert 4 <= len(partial) < 16 and (summary.shards_done, summary.shards_failed) == (0, 1)
    assert "corrupt or truncated tar" in outputs["errors"].read_text()
    assert "1 failed" in summary.line()


def _boundary_cut(data: bytes, members: int) -> bytes:
    """The tar's bytes up to the start of member `members`: what an interrupted copy between two members leaves."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return data[: tar.getmembers()[members].offset]


def test_unreadable_shards_are_failed_kept_partial_and_retried(shards, tmp_path):
    good = shards[0]
    data = Path(shards[1]).read_bytes()
    bad = {
        "missing": str(tmp_path / "missing-000000.tar"),
        "zero": str(tmp_path / "zero-000000.tar"),
        "nottar": str(tmp_path / "nottar-000000.tar"),
        "midmember": str(tmp_path / "midmember-000000.tar"),
        "boundary": str(tmp_path / "boundary-000000.tar"),  # tarfile alone takes this for a complete, shorter tar
    }
    Path(bad["zero"]).write_bytes(b"")
    Path(bad["nottar"]).write_bytes(b"<html>404 Not Found</html>" * 40)
    Path(bad["midmember"]).write_bytes(data[: len(data) // 3])
    Path(bad["boundary"]).write_bytes(_boundary_cut(data, 10))  # 5 complete samples of image + json
    out = tmp_path / "out"
    run = [good, *bad.values()]
    summary = caption_shards(FakeCaptioner(), run, out, num_workers=2, progress=False)
    assert (summary.shards_done, summary.shards_failed, summary.shards_partial) == (1, 5, 0)
    for name, shard in bad.items():
        outputs = shard_outputs(out, shard)
        assert not outputs["json"].exists(), name
        assert None in _errors(out, shard), name  # the shard-level error, with key null
    assert json.loads(shard_outputs(out, bad["zero"])["partial"].read_text()) == {}
    boundary = json.loads(shard_outputs(out, bad["boundary"])["partial"].read_text())
    assert len(boundary) == 4  # the last sample read may have lost members: never captioned
    assert "end-of-archive" in _errors(out, bad["boundary"])[None]
    assert "cannot open" in _errors(out, bad["missing"])[None]

    again = caption_shards(FakeCaptioner(), run, out, num_workers=0, progress=False)
    assert (again.shards_skipped, again.shards_done, again.shards_failed) == (1, 0, 5)

    Path(bad["boundary"]).write_bytes(data)  # the copy completed: the retry finishes the shard
    fixed = caption_shards(FakeCaptioner(), run, out, num_workers=0, progress=False)
    assert (fixed.shards_skipped, fixed.shards_done, fixed.shards_failed) == (1, 1, 4)
    assert len(json.loads(shard_outputs(out, bad["boundary"])["json"].read_text())) == 16
    assert not shard_outputs(out, bad["boundary"])["partial"].exists()

    accepted = caption_shards(FakeCaptioner(), run, out, num_workers=0, progress=False, accept_partial=True)
    # a shard that could not even be opened is never accepted: a typo must not become an empty finished shard
    assert (accepted.shards_skipped, accepted.shards_done, accepted.shards_partial, accepted.shards_failed) == (2, 3, 3, 1)
    assert not shard_outputs(out, bad["missing"])["json"].exists()
    assert 0 < len(json.loads(shard_outputs(out, bad["midmember"])["json"].read_text())) < 16
    assert "3 partial, accepted" in accepted.line()


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
