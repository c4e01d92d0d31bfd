"""`hf-captioners serve`: the page in a real headless Chromium, the same flows through gradio_client, the CLI.

Everything runs on loopback with tiny random models, so captions are gibberish: the tests check the page's
plumbing (what is shown where, errors as messages), not caption quality.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from urllib.parse import urlparse

import pytest

from hf_captioners.antarctic import AntarcticRetriever  # noqa: E402

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from PIL import Image  # noqa: E402

CUSTOM_ENTRY = "zebra crossing"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    from hf_captioners.antarctic import AntarcticCache
    from hf_captioners.toyworld.tiny_altogether import tiny_altogether
    from hf_captioners.toyworld.tiny_antarctic import tiny_antarctic

    root = tmp_path_factory.mktemp("models")
    model, processor = tiny_altogether("gpt2")
    model.save_pretrained(root / "altogether" / "final")
    processor.save_pretrained(root / "altogether" / "final")
    model, processor, texts = tiny_antarctic()
    cache = AntarcticCache.from_corpus(texts, AntarcticRetriever(None, model.clip, processor).encode, num_unigrams=10,
                                       num_bigrams=10, progress=False)
    model.set_cache(cache)
    model.save_pretrained(root / "antarctic" / "final")
    processor.save_pretrained(root / "antarctic" / "final")
    return [str(root / "altogether" / "final"), str(root / "antarctic" / "final")]


@pytest.fixture(scope="module")
def captioner(model_dirs):
    from hf_captioners.serve.captioning import Captioner, load_models

    return Captioner(load_models(model_dirs))


@pytest.fixture(scope="module")
def server(captioner, tmp_path_factory):
    from hf_captioners.serve.app import build_app, launch

    examples = tmp_path_factory.mktemp("examples")
    demo = build_app(captioner, examples_dir=examples)
    port = _free_port()
    launch(demo, host="127.0.0.1", port=port, block=False, allowed_paths=[str(examples)], quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    Image.new("RGB", (48, 40), (220, 40, 40)).save(root / "red.png")
    (root / "notes.png").write_bytes(b"this is a text file, not a PNG")
    (root / "bomb.png").write_bytes(_png_header_only(30_000, 30_000))
    return root


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height`: PIL refuses it before decoding anything."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _client(url):
    return gradio_client.Client(url, verbose=False, download_files=False)


def _caption(client, image, alt_text="", top_k=5, num_candidates=3, mode="greedy", max_new_tokens=8):
    return client.predict(gradio_client.handle_file(str(image)), alt_text, mode, 3, 0.7, 0.9, max_new_tokens, 0,
                          top_k, num_candidates, api_name="/caption")[-1]


# ---- the CLI ---------------------------------------------------------------------------------------------
def test_cli_unsupported_folder_prints_one_line_and_exits_2(tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "hf_captioners.commands", "serve", str(folder)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "unsupported model_type 'bert'" in lines[0], done.stderr


def test_cli_missing_config_is_one_line_too(tmp_path, capsys):
    from hf_captioners.commands import main

    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no config.json" in err[0]


# ---- the logic behind the page ---------------------------------------------------------------------------
def test_altogether_shows_the_prompt_it_read_and_the_truncation(captioner, files):
    from hf_captioners.serve.captioning import Decoding, highlight_kept_words, load_image

    image = load_image(str(files / "red.png"), "red.png")
    long_text = " ".join(["lakeside"] * 1250)  # 10,000 characters
    results = captioner.caption(image, [long_text], Decoding(max_new_tokens=4))
    seen = results[0]["alt_text"]
    processor = captioner.models[0].processor
    assert seen["truncated"] and seen["kept_tokens"] == processor.prompt_length
    assert seen["tokens"] > processor.prompt_length
    assert seen["seen"] and long_text.startswith(seen["seen"].strip())

    empty = captioner.caption(image, [], Decoding(max_new_tokens=4))
    assert empty[0]["error"] is None and empty[0]["alt_text"]["joined"] == ""
    html = captioner.caption(image, ["  Geoff &amp; <b>Ada</b>  ", "Geoff &amp; <b>Ada</b>"], Decoding(max_new_tokens=4))
    assert html[0]["alt_text"]["joined"] == "Geoff & Ada"  # join_alt_texts: unescaped, tags gone, deduplicated
    assert highlight_kept_words("Geoff by the lake.", "geoff lake") == [
        ("Geoff", "from alt-text"), (" by the ", None), ("lake", "from alt-text"), (".", None)]


def test_decoding_modes_reach_generate(captioner, files):
    from hf_captioners.serve.captioning import Decoding, load_image

    image = load_image(str(files / "red.png"), "red.png")
    for decoding in (Decoding("beam", num_beams=2, max_new_tokens=4), Decoding("sampling", max_new_tokens=4, seed=1)):
        results = captioner.caption(image, ["a red square"], decoding, top_k=4, num_candidates=2)
        assert all(r["error"] is None for r in results), results
    sampled = [captioner.caption(image, [], Decoding("sampling", max_new_tokens=6, seed=3))[0]["caption"] for _ in range(2)]
    assert sampled[0] == sampled[1]  # the seed makes sampling repeatable


# ---- the API (gradio_client) -----------------------------------------------------------------------------
def test_api_caption_custom_cache_and_reset(server, captioner, files):
    client = _client(server)
    results = _caption(client, files / "red.png", "geoff at the lake\nred square")
    assert [r["model"] for r in results] == ["altogether", "antarctic"]
    assert all(r["error"] is None and r["ms"] > 0 for r in results), results
    assert results[0]["alt_text"]["joined"] == "geoff at the lake; red square"
    antarctic = results[1]
    assert len(antarctic["retrieved"]) == 5 and sum(winner for winner, _, _ in antarctic["candidates"]) == 1
    assert antarctic["caption"] == next(c for w, c, _ in antarctic["candidates"] if w)

    size = len(captioner.antarctic[0].base_cache)
    client.predict(CUSTOM_ENTRY, api_name="/add_cache_entries")
    everything = _caption(client, files / "red.png", top_k=size + 1)[1]
    assert everything["cache_size"] == size + 1
    assert CUSTOM_ENTRY in [entry for entry, _ in everything["retrieved"]]
    assert len(captioner.antarctic[0].base_cache) == size  # the loaded cache is untouched

    other = _client(server)  # a second visitor does not see the first one's entries
    assert _caption(other, files / "red.png", top_k=size)[1]["cache_size"] == size
    client.predict(api_name="/reset_cache")
    assert _caption(client, files / "red.png", top_k=size)[1]["cache_size"] == size


@pytest.mark.parametrize(("name", "message"), [("notes.png", "not a readable image"), ("bomb.png", "decompression bomb")])
def test_api_bad_images_are_messages(server, files, name, message):
    with pytest.raises(gradio_client.exceptions.AppError, match=message) as info:
        _caption(_client(server), files / name)
    assert "Traceback" not in str(info.value) and "/tmp" not in str(info.value)


def test_api_long_and_empty_alt_texts_caption_and_say_so(server, files):
    client = _client(server)
    outputs = client.predict(gradio_client.handle_file(str(files / "red.png")), "lakeside " * 1111, "greedy", 3, 0.7,
                             0.9, 4, 0, 5, 2, api_name="/caption")
    assert "Truncated" in outputs[4] and outputs[-1][0]["error"] is None  # outputs[4]: altogether's note
    outputs = client.predict(gradio_client.handle_file(str(files / "red.png")), "", "greedy", 3, 0.7, 0.9, 4, 0, 5, 2,
                             api_name="/caption")
    assert "No alt-text" in outputs[4] and all(r["error"] is None for r in outputs[-1])


def _shard(tmp_path, files) -> Path:
    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("000001.png", (files / "red.png").read_bytes())
        add("000001.json", json.dumps({"texts": [["alt", "a red square"], ["title", "geoff"]]}).encode())
        add("000002.jpg", b"garbage")
        add("000003.json", b"{}")
    return shard


def test_api_batch_tar_and_images_to_jsonl(server, files, tmp_path):
    shard = _shard(tmp_path, files)
    client = _client(server)
    summary, download, _ = client.predict([gradio_client.handle_file(str(shard)), gradio_client.handle_file(str(files / "red.png"))],
                                          "greedy", 3, 0.7, 0.9, 6, 0, 5, 2, api_name="/caption_batch")
    assert "**4** images" in summary and "**2** with errors" in summary
    path = download if isinstance(download, str) else download.get("path") or download.get("url")
    if path.startswith("http"):
        import httpx

        text = httpx.get(path).text
    else:
        text = Path(path).read_text()
    lines = {row["key"]: row for row in map(json.loads, text.splitlines())}
    assert set(lines) == {"000001", "000002", "000003", "red"}
    assert lines["000001"]["error"] is None and set(lines["000001"]["captions"]) == {"altogether", "antarctic"}
    assert "not a readable image" in lines["000002"]["error"] and lines["000002"]["captions"] == {}
    assert "BytesIO" not in lines["000002"]["error"]
    assert "000003: missing image" in lines["000003"]["error"]  # the shard reader caption-shards uses


# ---- a real browser --------------------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture
def page(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    if executable is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium); Playwright's own browsers are not used")
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.on("request", lambda request: requests.append(request.url))
        page.set_default_timeout(30_000)
        page.goto(server)
        page.locator("#caption-btn").wait_for()
        yield page
        page.screenshot(path=str(tmp_path / "final.png"), full_page=True)
        browser.close()
    outside = [u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and urlparse(u).hostname not in ("127.0.0.1", "localhost")]
    assert not outside, f"requests left loopback: {outside[:5]}"


def _set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_browser_caption_tables_custom_cache_and_errors(page, server, captioner, files, tmp_path):
    from playwright.sync_api import expect

    page.locator("#image input[type=file]").set_input_files(str(files / "red.png"))
    expect(page.locator("#image img").first).to_be_visible()
    page.locator("#alt-text textarea").fill("geoff at the lake")
    size = len(captioner.antarctic[0].base_cache)
    _set_number(page, "top-k", size + 1)
    _set_number(page, "max-new-tokens", 8)
    page.locator("#caption-btn").click()
    expect(page.locator("#time-0")).to_contain_text("ms")
    expect(page.locator("#time-1")).to_contain_text("ms")
    caption = page.locator("#caption-0 textarea").input_value()
    assert caption and not caption.startswith("error")
    assert page.locator("#seen-0 textarea").input_value().strip() == "geoff at the lake"
    assert page.locator("#caption-1 textarea").input_value()
    expect(page.locator("#table-1")).to_contain_text("CLIP score")
    expect(page.locator("#candidates-1")).to_contain_text("★")
    assert CUSTOM_ENTRY not in page.locator("#table-1").inner_text()
    page.screenshot(path=str(tmp_path / "captioned.png"), full_page=True)

    page.locator("#custom-entries textarea").fill(CUSTOM_ENTRY)
    page.locator("#add-cache-btn").click()
    expect(page.locator("#cache-note")).to_contain_text("1 custom")
    page.locator("#caption-btn").click()
    expect(page.locator("#table-1")).to_contain_text(CUSTOM_ENTRY)
    page.screenshot(path=str(tmp_path / "custom-entry.png"), full_page=True)

    page.locator("#reset-cache-btn").click()
    expect(page.locator("#cache-note")).to_contain_text("as loaded")

    page.locator("#image input[type=file]").set_input_files(str(files / "notes.png"))
    page.locator("#caption-btn").click()
    expect(page.get_by_text("not a readable image").first).to_be_visible()
    assert "Traceback" not in page.content()
    page.screenshot(path=str(tmp_path / "error.png"), full_page=True)

    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-files input[type=file]").set_input_files(str(_shard(tmp_path, files)))
    expect(page.locator("#batch-files")).to_contain_text("shard-000.tar")
    page.locator("#batch-btn").click()
    expect(page.locator("#batch-summary")).to_contain_text("3 images")
    expect(page.locator("#batch-preview")).to_contain_text("000002")
    expect(page.locator("#batch-download")).to_contain_text("captions.jsonl")
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)


def test_space_app_builds_the_same_page(model_dirs, monkeypatch):
    import runpy

    monkeypatch.setenv("HF_CAPTIONERS_MODELS", " ".join(model_dirs))
    space = runpy.run_path(str(Path(__file__).resolve().parents[1] / "app.py"), run_name="space")
    assert isinstance(space["demo"], gr.Blocks)
    names = {dep.get("api_name") for dep in space["demo"].config["dependencies"]}
    assert {"caption", "add_cache_entries", "reset_cache", "caption_batch"} <= names
