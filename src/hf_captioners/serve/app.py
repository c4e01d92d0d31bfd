"""The Gradio page: one image, every loaded captioner side by side, plus a batch tab.

Offline by construction: analytics off before Gradio is imported, a theme with system fonts only (the
default theme links Google Fonts), no SSR node server, bound to loopback unless told otherwise.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from hf_captioners.altogether.image_utils import ImageInputError  # noqa: E402
from hf_captioners.serve.captioning import (  # noqa: E402
    Captioner,
    Decoding,
    LoadedModel,
    batch_jsonl_line,
    iter_batch_items,
    load_image,
    split_alt_texts,
)

logger = logging.getLogger(__name__)

__all__ = ["THEME", "build_app", "example_images", "launch"]

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="amber", font=SYSTEM_FONTS, font_mono=MONO_FONTS)
CSS = """
.model-card {border: 1px solid var(--border-color-primary); border-radius: 12px; padding: 10px;}
.timing {font-variant-numeric: tabular-nums; color: var(--body-text-color-subdued);}
"""
MAX_ALT_TEXT_CHARS = 100_000
HIGHLIGHT = "from alt-text"


def image_input(**kwargs) -> gr.Image:
    """A gr.Image that hands over the uploaded file's path undecoded, so our loader (with its bomb check and
    clear messages) is the only code that opens user images. Patched on the instance: a subclass would make
    Gradio write a .pyi stub next to this file."""
    image = gr.Image(type="filepath", **kwargs)
    decode = image.preprocess

    def preprocess(payload):
        if payload is None or (payload.url or "").startswith("data:"):
            return decode(payload)
        return payload.path

    image.preprocess = preprocess
    return image


def example_images(folder: str | os.PathLike, count: int = 4) -> list[list[str]]:
    """A few toy-world eval images (PNG) with their alt-texts, generated at start-up: no committed binaries."""
    import io

    from PIL import Image

    from hf_captioners.toyworld import ToyWorldConfig, generate_example

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = ToyWorldConfig(image_size=128)
    rows = []
    for index in range(count):
        example = generate_example(config, "eval", index)
        path = folder / f"toyworld-{example.key}.png"
        Image.open(io.BytesIO(example.image_bytes)).convert("RGB").save(path)
        rows.append([str(path), "\n".join(dict.fromkeys(t for _, t in example.alt_texts))])
    return rows


def _decoding(mode, beams, temperature, top_p, max_new_tokens, seed) -> Decoding:
    return Decoding(mode=mode, num_beams=int(beams), temperature=float(temperature), top_p=float(top_p),
                    max_new_tokens=int(max_new_tokens), seed=int(seed or 0))


def _alt_text_note(entry: LoadedModel, result: dict) -> str:
    if not entry.reads_alt_text:
        return "This model reads the image only (ClipCap): alt-texts are ignored."
    seen = result.get("alt_text")
    if not seen:
        return ""
    if not seen["joined"]:
        return "No alt-text: captioning from the image alone."
    if seen["truncated"]:
        return (f"**Truncated:** the alt-text is {seen['tokens']:,} tokens; the model reads the first "
                f"{seen['prompt_length']} (`prompt_length`).")
    return f"{seen['tokens']} of {seen['prompt_length']} prompt tokens used."


def _cache_note(captioner: Captioner, caches: dict | None) -> str:
    parts = []
    for entry in captioner.antarctic:
        cache = (caches or {}).get(entry.name) or entry.base_cache
        extra = len(cache) - len(entry.base_cache)
        parts.append(f"**{entry.name}**: {len(cache):,} entries" + (f" ({extra} custom)" if extra else " (as loaded)"))
    return " · ".join(parts)


def build_app(captioner: Captioner, examples_dir: str | os.PathLike | None = None, title: str = "hf-captioners") -> gr.Blocks:
    """The page for already loaded models (loading stays in the CLI / Space entry point)."""
    models = captioner.models
    antarctic = captioner.antarctic
    default_top_k = max((m.model.config.table_top_k for m in antarctic), default=5)
    default_candidates = max((m.model.generation_config.num_return_sequences or 1 for m in antarctic), default=3)

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        caches = gr.State(None)
        gr.Markdown(f"# {title}\nDrop an image, add alt-texts (one per line), compare every loaded captioner. "
                    "Everything runs on this machine.")
        with gr.Accordion("Decoding", open=True):
            with gr.Row():
                mode = gr.Radio(["greedy", "beam", "sampling"], value="greedy", label="Decoding", elem_id="decoding")
                beams = gr.Slider(1, 8, value=3, step=1, label="Beams (beam)")
                temperature = gr.Slider(0.1, 2.0, value=0.7, step=0.05, label="Temperature (sampling)")
                top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p (sampling)")
                max_new_tokens = gr.Slider(1, 128, value=32, step=1, label="Max new tokens", elem_id="max-new-tokens")
                seed = gr.Number(0, precision=0, label="Seed (sampling)")
            with gr.Row(visible=bool(antarctic)):
                top_k = gr.Slider(1, 64, value=default_top_k, step=1, label="antarctic: retrieved n-grams (top-k)",
                                  elem_id="top-k")
                num_candidates = gr.Slider(1, 32, value=default_candidates, step=1,
                                           label="antarctic: candidates to re-rank", elem_id="num-candidates")
        decoding_inputs = [mode, beams, temperature, top_p, max_new_tokens, seed, top_k, num_candidates]

        with gr.Tab("Caption"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    image = image_input(label="Image", sources=["upload", "clipboard"],
                                      elem_id="image", height=260)
                    alt_text = gr.Textbox(label="Alt-texts (one per line; empty is fine)", lines=3,
                                          elem_id="alt-text", placeholder="e.g. Photo of Geoff at the lake")
                    run_button = gr.Button("Caption", variant="primary", elem_id="caption-btn")
                    if examples_dir is not None:
                        gr.Examples(example_images(examples_dir), inputs=[image, alt_text], label="Toy-world examples")
                    if antarctic:
                        with gr.Group():
                            custom = gr.Textbox(label="Custom n-gram cache entries (one per line)", lines=2,
                                                elem_id="custom-entries", placeholder="e.g. geoff hinton")
                            with gr.Row():
                                add_button = gr.Button("Add to cache", elem_id="add-cache-btn", size="sm")
                                reset_button = gr.Button("Reset cache", elem_id="reset-cache-btn", size="sm")
                            cache_note = gr.Markdown(_cache_note(captioner, None), elem_id="cache-note")
                with gr.Column(scale=3):
                    outputs, widgets = [], []
                    with gr.Row(equal_height=False):
                        for i, entry in enumerate(models):
                            with gr.Column(elem_classes=["model-card"], min_width=260):
                                gr.Markdown(f"### {entry.name}\n`{entry.kind}` · `{entry.path}`")
                                timing = gr.Markdown("", elem_id=f"time-{i}", elem_classes=["timing"])
                                caption = gr.Textbox(label="Caption", elem_id=f"caption-{i}", lines=2, interactive=False)
                                parts = {"timing": timing, "caption": caption}
                                if entry.kind == "altogether":
                                    parts["highlight"] = gr.HighlightedText(
                                        label="Caption, words kept from the alt-text highlighted",
                                        color_map={HIGHLIGHT: "#f59e0b"}, elem_id=f"highlight-{i}", show_legend=True)
                                    parts["seen"] = gr.Textbox(label="Alt-text as the model saw it", lines=2,
                                                               elem_id=f"seen-{i}", interactive=False)
                                    parts["note"] = gr.Markdown("", elem_id=f"note-{i}")
                                else:
                                    parts["table"] = gr.Dataframe(headers=["n-gram", "CLIP score"], label="Retrieved n-grams",
                                                                  elem_id=f"table-{i}", interactive=False, max_height=300)
                                    parts["candidates"] = gr.Dataframe(
                                        headers=["best", "candidate", "re-rank score"], label="Candidates (CLIP re-rank, ★ = caption)",
                                        elem_id=f"candidates-{i}", interactive=False, wrap=True, max_height=300,
                                        column_widths=["15%", "60%", "25%"])
                                widgets.append(parts)
                                outputs.extend(parts.values())
            with gr.Accordion("Raw results (JSON, as the API returns them)", open=False):
                raw = gr.JSON(elem_id="raw")
            outputs.append(raw)

        with gr.Tab("Batch"):
            gr.Markdown("Upload `.tar` webdataset shards (`{key}.jpeg/.png/.jpg` + optional `{key}.json` with "
                        "`texts: [[source, text], ...]`) or several images; download one JSON line per image.")
            batch_files = gr.File(file_count="multiple", file_types=[".tar", "image"], label="Shards or images",
                                  elem_id="batch-files", type="filepath")
            batch_button = gr.Button("Caption all", variant="primary", elem_id="batch-btn")
            batch_summary = gr.Markdown("", elem_id="batch-summary")
            batch_download = gr.File(label="captions.jsonl", elem_id="batch-download", interactive=False)
            batch_preview = gr.Dataframe(headers=["key", *[m.name for m in models], "error"], label="Preview",
                                         elem_id="batch-preview", interactive=False, wrap=True)

        def caption_event(image_path, text, mode, beams, temperature, top_p, max_new_tokens, seed, top_k,
                          num_candidates, caches):
            if not image_path:
                raise gr.Error("Drop an image first (or pick an example).", title="No image")
            try:
                rgb = load_image(image_path, name=Path(str(image_path)).name)
            except ImageInputError as error:
                message = str(error).replace(str(image_path), Path(str(image_path)).name)
                raise gr.Error(message, title="Not a usable image") from None
            text = text or ""
            if len(text) > MAX_ALT_TEXT_CHARS:
                gr.Warning(f"Alt-text cut to its first {MAX_ALT_TEXT_CHARS:,} of {len(text):,} characters.")
                text = text[:MAX_ALT_TEXT_CHARS]
            try:
                decoding = _decoding(mode, beams, temperature, top_p, max_new_tokens, seed)
            except (TypeError, ValueError) as error:
                raise gr.Error(str(error), title="Bad decoding settings") from None
            results = captioner.caption(rgb, split_alt_texts(text), decoding, top_k=int(top_k),
                                        num_candidates=int(num_candidates), caches=caches)
            values = []
            for entry, parts, result in zip(models, widgets, results):
                if result.get("error"):
                    gr.Warning(f"{entry.name}: {result['error']}", title="Model error")
                seen = result.get("alt_text")
                if seen and seen["truncated"]:
                    gr.Warning(f"{entry.name}: the alt-text is {seen['tokens']:,} tokens; the model reads the first "
                               f"{seen['prompt_length']}.", title="Alt-text truncated")
                values.append(f"**{result['ms']:.0f} ms**")
                values.append(result["caption"] if not result.get("error") else f"error: {result['error']}")
                if "highlight" in parts:
                    values.append(result.get("highlighted") or [])
                    values.append(seen["seen"] if seen else "")
                    values.append(_alt_text_note(entry, result))
                if "table" in parts:
                    values.append(result.get("retrieved") or [])
                    values.append([["★" if w else "", c, s] for w, c, s in result.get("candidates") or []])
            values.append(results)
            return values

        run_button.click(caption_event, inputs=[image, alt_text, *decoding_inputs, caches], outputs=outputs,
                         api_name="caption")

        if antarctic:
            def add_event(text, caches):
                lines = split_alt_texts(text)
                if not lines:
                    raise gr.Error("Type one or more entries, one per line.", title="Nothing to add")
                caches, problems = captioner.extend_caches(caches, lines)
                for problem in problems:
                    gr.Warning(problem, title="Cache")
                return caches, _cache_note(captioner, caches), ""

            def reset_event():
                return None, _cache_note(captioner, None)

            add_button.click(add_event, inputs=[custom, caches], outputs=[caches, cache_note, custom],
                             api_name="add_cache_entries")
            reset_button.click(reset_event, outputs=[caches, cache_note], api_name="reset_cache")

        def batch_event(files, mode, beams, temperature, top_p, max_new_tokens, seed, top_k, num_candidates, caches,
                        progress=gr.Progress()):  # noqa: B008 (Gradio injects progress through this default)
            paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files or []]
            if not paths:
                raise gr.Error("Upload a .tar shard or some images first.", title="No files")
            decoding = _decoding(mode, beams, temperature, top_p, max_new_tokens, seed)
            progress(0, desc="reading")
            items = list(iter_batch_items(paths))
            out_dir = Path(tempfile.mkdtemp(prefix="hf-captioners-batch-"))
            out_path = out_dir / "captions.jsonl"
            preview, failed = [], 0
            with out_path.open("w", encoding="utf-8") as handle:
                for index, (key, data, alts, error) in enumerate(progress.tqdm(items, desc="captioning", unit="images")):
                    results = None
                    if error is None:
                        try:
                            rgb = load_image(data, name=key)
                            results = captioner.caption(rgb, alts, decoding, top_k=int(top_k),
                                                        num_candidates=int(num_candidates), caches=caches)
                        except ImageInputError as image_error:
                            error = str(image_error)
                    line = batch_jsonl_line(key, results, error)
                    handle.write(line + "\n")
                    failed += bool(error or any(r.get("error") for r in results or []))
                    if index < 200:
                        captions = {r["model"]: r["caption"] for r in results or []}
                        preview.append([key, *[captions.get(m.name, "") for m in models], error or ""])
            summary = f"**{len(items)}** images captioned by {len(models)} models; **{failed}** with errors."
            return summary, str(out_path), preview

        batch_button.click(batch_event, inputs=[batch_files, *decoding_inputs, caches],
                           outputs=[batch_summary, batch_download, batch_preview], api_name="caption_batch")
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, block: bool = True,
           allowed_paths: list[str] | None = None, **kwargs):
    """Launch with the offline settings; `block=False` returns at once (tests, notebooks)."""
    demo.queue(default_concurrency_limit=1)
    return demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, share=False,
                       theme=THEME, css=CSS, ssr_mode=False, pwa=False, mcp_server=False, show_error=False,
                       footer_links=["api"], allowed_paths=allowed_paths, **kwargs)
