"""The GPU suite: both captioners at their real shapes (random weights built from configs), the originals' inference
paths against ours, one table and `benchmarks/RESULTS.md`.

    python benchmarks/gpu_suite.py                 # one GPU: real shapes, fp16 and bf16 (sized for 8 minutes on an H200)
    python benchmarks/gpu_suite.py --tiny          # toy shapes on the CPU, so CI keeps the script working

Rows (images/s, new tokens/s, peak GPU memory):
- Altogether, MetaCLIP ViT-H/14 + OPT-1.3B, 40 prefix + 128 prompt + 192 new tokens, sampling t=0.2 / top-p 0.7:
  * "original": MetaCLIP `apps/altogether/infer.py` `inference` (lines 148-192) restated — fp32 weights under
    `torch.autocast`, CLIP embedding L2-normalised, mapper, `lm.generate(inputs_embeds=...)` with no attention
    mask and `use_cache=True`;
  * "ours": `AltogetherForConditionalGeneration.generate` with the weights in the half dtype (SDPA, KV cache);
  * "ours, static cache": the same with `cache_implementation="static"` (transformers compiles the decode step
    on GPUs).
  Every row generates exactly 192 new tokens (`min_new_tokens`), so random weights cannot stop one row early.
- antarctic, CLIP ViT-B/16 + bart-large, top-10 tables from a 50,000-entry cache, beam 3 / return 3, CLIP re-ranking:
  * "original": antarctic-captions `utils.py` `generate` (lines 68-100) restated — tables for the batch, then one
    image at a time: tokenize, `generate`, decode, `clip_rescoring`;
  * "ours": `AntarcticCaptionPipeline.caption_pixels` (everything batched).
- One Altogether FT training step (batch 32, bf16 autocast, AdamW, frozen CLIP): steps/s.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


@dataclass
class Shapes:
    batch: int
    prefix: int
    prompt: int
    new_tokens: int
    antarctic_batch: int
    cache_entries: int
    train_batch: int
    dtypes: tuple[str, ...]


REAL = Shapes(batch=128, prefix=40, prompt=128, new_tokens=192, antarctic_batch=128, cache_entries=50_000,
              train_batch=32, dtypes=("float16", "bfloat16"))
TINY = Shapes(batch=4, prefix=4, prompt=8, new_tokens=6, antarctic_batch=3, cache_entries=200, train_batch=4,
              dtypes=("bfloat16",))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def _measure(device, row: dict):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    start = time.perf_counter()
    yield
    _sync(device)
    row["seconds"] = time.perf_counter() - start
    row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


# ---- Altogether ------------------------------------------------------------------------------------------
def altogether_model(tiny: bool, shapes: Shapes, device):
    from hf_captioners.altogether import AltogetherConfig, AltogetherForConditionalGeneration
    from hf_captioners.altogether.configuration_altogether import METACLIP_H14_VISION, OPT_1_3B

    vision, text = dict(METACLIP_H14_VISION), dict(OPT_1_3B)
    mapper = {"mapper_num_layers": 8, "mapper_num_heads": 8}
    if tiny:
        vision.update(hidden_size=32, intermediate_size=64, projection_dim=24, num_hidden_layers=1,
                      num_attention_heads=2, image_size=32, patch_size=8)
        text.update(vocab_size=512, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2,
                    word_embed_proj_dim=32)
        mapper = {"mapper_num_layers": 1, "mapper_num_heads": 2}
    text_vocab = text["vocab_size"]
    text["vocab_size"] += 8  # `<image>` and padding rows, as AltogetherProcessor.from_backbones adds them
    config = AltogetherConfig(vision_config={"model_type": "clip_vision_model", **vision},
                              text_config={"model_type": "opt", **text}, prefix_length=shapes.prefix,
                              clip_length=shapes.prefix, prompt_length=shapes.prompt, image_token_id=text_vocab,
                              lm_vocab_size=text_vocab, **mapper)
    torch.manual_seed(0)
    with torch.device(device):
        model = AltogetherForConditionalGeneration(config).eval()
    return model


def altogether_inputs(model, shapes: Shapes, device, batch: int):
    config, generator = model.config, torch.Generator().manual_seed(0)
    image_size = config.vision_config.image_size
    pixel_values = torch.randn(batch, 3, image_size, image_size, generator=generator).to(device)
    lengths = torch.randint(shapes.prompt // 4, shapes.prompt + 1, (batch,), generator=generator)
    prompt = torch.full((batch, shapes.prompt), config.text_config.pad_token_id)
    for i, n in enumerate(lengths.tolist()):  # left-padded alt-text tokens, pads attended (as the original)
        prompt[i, shapes.prompt - n :] = torch.randint(4, config.lm_vocab_size, (n,), generator=generator)
    input_ids = torch.cat([torch.full((batch, shapes.prefix), config.image_token_id), prompt], dim=1).to(device)
    return pixel_values, input_ids


SAMPLING = {"do_sample": True, "temperature": 0.2, "top_p": 0.7}


@torch.no_grad()
def original_altogether(model, pixel_values, input_ids, new_tokens: int, dtype, device):
    """infer.py `inference`: fp32 modules under autocast, then the LM's own generate on inputs_embeds."""
    lm = model.language_model
    with torch.autocast(device.type, dtype=dtype):
        features = torch.nn.functional.normalize(model.get_image_features(pixel_values), dim=-1)
        prefix = model.mapper(features).view(pixel_values.shape[0], model.config.prefix_length, -1)
        prompt = lm.get_input_embeddings()(input_ids[:, model.config.prefix_length :])
        return lm.generate(inputs_embeds=torch.cat([prefix, prompt], dim=1), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, use_cache=True, **SAMPLING)


@torch.no_grad()
def our_altogether(model, pixel_values, input_ids, new_tokens: int, **kwargs):
    return model.generate(pixel_values=pixel_values.to(model.dtype), input_ids=input_ids,
                          attention_mask=torch.ones_like(input_ids), max_new_tokens=new_tokens,
                          min_new_tokens=new_tokens, **SAMPLING, **kwargs)


def bench_altogether(tiny: bool, shapes: Shapes, device) -> list[dict]:
    rows = []
    base = altogether_model(tiny, shapes, device)
    pixel_values, input_ids = altogether_inputs(base, shapes, device, shapes.batch)
    images = shapes.batch
    for dtype_name in shapes.dtypes:
        dtype = getattr(torch, dtype_name)
        original_altogether(base, pixel_values[:2], input_ids[:2], 2, dtype, device)  # warm-up
        row = {"system": "Altogether", "path": "original (infer.py, fp32 + autocast)", "dtype": dtype_name}
        with _measure(device, row):
            original_altogether(base, pixel_values, input_ids, shapes.new_tokens, dtype, device)
        rows.append(row)
        half = altogether_model(tiny, shapes, device).to(dtype)
        half.load_state_dict(base.state_dict())
        for label, kwargs in (("ours (generate, KV cache)", {}),
                              ("ours (static cache)", {"cache_implementation": "static"})):
            row = {"system": "Altogether", "path": label, "dtype": dtype_name}
            try:
                our_altogether(half, pixel_values[:2], input_ids[:2], 2, **kwargs)  # warm-up (and compile)
                with _measure(device, row):
                    our_altogether(half, pixel_values, input_ids, shapes.new_tokens, **kwargs)
            except Exception as error:  # noqa: BLE001 - a path this machine cannot run is reported, not hidden
                row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
            rows.append(row)
        del half
    for row in rows:
        if "seconds" in row:
            row["images_per_s"] = images / row["seconds"]
            row["tokens_per_s"] = images * shapes.new_tokens / row["seconds"]
    return rows


def bench_training_step(tiny: bool, shapes: Shapes, device) -> dict:
    from hf_captioners.training.loop import weight_decay_groups

    model = altogether_model(tiny, shapes, device).train()
    pixel_values, input_ids = altogether_inputs(model, shapes, device, shapes.train_batch)
    caption = torch.randint(4, model.config.lm_vocab_size, (shapes.train_batch, shapes.new_tokens)).to(device)
    ids = torch.cat([input_ids, caption], dim=1)
    labels = torch.cat([torch.full_like(input_ids, -100), caption], dim=1)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, 0.2), lr=2e-4, betas=(0.9, 0.98), eps=1e-6)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(pixel_values=pixel_values, input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels,
                         logits_to_keep=caption.shape[1] + 1).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: optimizer state allocated
    row = {"system": "Altogether FT", "path": f"train step, batch {shapes.train_batch}", "dtype": "bfloat16 autocast"}
    steps = 2 if tiny else 5
    with _measure(device, row):
        for _ in range(steps):
            step()
    row["steps_per_s"] = steps / row["seconds"]
    return row


# ---- antarctic -------------------------------------------------------------------------------------------
def antarctic_model(tiny: bool, shapes: Shapes, device):
    from transformers import BartConfig, CLIPConfig

    from hf_captioners.antarctic import AntarcticCache, AntarcticConfig, AntarcticForConditionalGeneration
    from hf_captioners.toyworld.tiny_antarctic import tiny_config, tiny_processor, tiny_tokenizers, toy_texts

    clip_tok, bart_tok = tiny_tokenizers(toy_texts(40))
    if tiny:
        config = tiny_config(clip_tok, bart_tok)
        image_size = 32
    else:  # openai/clip-vit-base-patch16 and facebook/bart-large shapes; toy tokenizers (ids past them decode to nothing)
        image_size = 224
        clip = CLIPConfig(text_config={"vocab_size": 49408}, projection_dim=512,
                          vision_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                                         "num_attention_heads": 12, "image_size": 224, "patch_size": 16})
        special = {"pad_token_id": bart_tok.pad_token_id, "bos_token_id": bart_tok.bos_token_id,
                   "eos_token_id": bart_tok.eos_token_id, "decoder_start_token_id": bart_tok.eos_token_id,
                   "forced_eos_token_id": bart_tok.eos_token_id}
        bart = BartConfig(vocab_size=50265, d_model=1024, encoder_layers=12, decoder_layers=12,
                          encoder_attention_heads=16, decoder_attention_heads=16, encoder_ffn_dim=4096,
                          decoder_ffn_dim=4096, max_position_embeddings=1024, **special)
        config = AntarcticConfig(clip_config=clip, bart_config=bart)
    torch.manual_seed(0)
    with torch.device(device):
        model = AntarcticForConditionalGeneration(config).eval()
    dim = config.clip_config.projection_dim
    entries = [f"entry {i}" for i in range(shapes.cache_entries)]
    model.set_cache(AntarcticCache(entries, torch.nn.functional.normalize(torch.randn(len(entries), dim), dim=-1)))
    return model, tiny_processor(clip_tok, bart_tok, image_size=image_size)


@torch.no_grad()
def original_antarctic(model, processor, pixel_values, device, generate_kwargs: dict | None = None,
                       generator=None) -> list[str]:
    """utils.py `generate`: the batch's tables at once (`build_table`, lines 21-50: a softmax over the whole cache,
    then each image's top k), then one image at a time through BART's own `generate` (lines 87-93, `net.model`:
    a stock BartForConditionalGeneration; here `model.bart` with the model's generation config, beam 3 / return 3,
    sampler.py's defaults; `generate_kwargs` add to them, as its flags do) and CLIP (`clip_rescoring`).
    `generator=model` runs the same loop through this project's `model.generate` instead."""
    image = model.get_image_features(pixel_values)
    similarity = (100.0 * image @ model.cache.embeddings.T.to(image)).softmax(dim=-1)
    indices = [similarity[i].topk(model.config.table_top_k).indices for i in range(len(image))]
    tables = [processor.linearize(row) for row in model.cache.lookup(torch.stack(indices))]
    options = {"num_beams": 3, "num_return_sequences": 3, **(generate_kwargs or {})}
    if generator is None:
        generator, options = model.bart, {"generation_config": model.generation_config, **options}
    captions = []
    for i, table in enumerate(tables):
        inputs = processor.tokenizer(table, return_tensors="pt").to(device)
        out = generator.generate(**inputs, **options)
        candidates = processor.tokenizer.batch_decode(out, skip_special_tokens=True)
        tokens = processor.clip_tokenize(candidates).to(device)
        text = model.clip.get_text_features(**tokens).pooler_output
        scores = torch.nn.functional.normalize(text.float(), dim=-1) @ image[i]
        captions.append(candidates[int(scores.argmax())].strip())  # sampler.py writes `line.strip()`
    return captions


def bench_antarctic(tiny: bool, shapes: Shapes, device) -> list[dict]:
    from hf_captioners.registry import model_pipeline

    rows = []
    model, processor = antarctic_model(tiny, shapes, device)
    size = model.config.clip_config.vision_config.image_size
    pixel_values = torch.randn(shapes.antarctic_batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    pixel_values = pixel_values.to(device)
    for dtype_name in shapes.dtypes:
        dtype = getattr(torch, dtype_name)
        half = model.to(dtype)
        pipe = model_pipeline(half, processor)
        pixels = pixel_values.to(dtype)
        original_antarctic(half, processor, pixels[:1], device)
        pipe.caption_pixels(pixels[:1])
        for label, batched in (("original (utils.py, one image at a time)", False), ("ours (caption_pixels, batched)", True)):
            row = {"system": "antarctic", "path": label, "dtype": dtype_name}
            with _measure(device, row):
                row["captions"] = pipe.caption_pixels(pixels) if batched else original_antarctic(half, processor, pixels, device)
            row["images_per_s"] = shapes.antarctic_batch / row["seconds"]
            rows.append(row)
        same = sum(a == b for a, b in zip(rows[-2].pop("captions"), rows[-1].pop("captions")))
        rows[-1]["note"] = f"same caption as the original for {same}/{shapes.antarctic_batch} images"
    return rows


# ---- report ----------------------------------------------------------------------------------------------
def _fmt(value, pattern):
    return pattern.format(value) if value is not None else "-"


def table(rows: list[dict]) -> str:
    lines = ["| system | path | dtype | images/s | new tokens/s | steps/s | peak GiB | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        note = r.get("error") or r.get("note") or ""
        lines.append(f"| {r['system']} | {r['path']} | {r['dtype']} | {_fmt(r.get('images_per_s'), '{:.2f}')} | "
                     f"{_fmt(r.get('tokens_per_s'), '{:.0f}')} | {_fmt(r.get('steps_per_s'), '{:.2f}')} | "
                     f"{_fmt(r.get('peak_gib'), '{:.1f}')} | {note} |")
    return "\n".join(lines)


def machine(device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"CPU, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()} (torch {torch.__version__})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy shapes on the CPU (a smoke run, seconds)")
    parser.add_argument("--out", default=None,
                        help="the Markdown report (default benchmarks/RESULTS.md; --tiny: benchmarks/RESULTS-tiny.md, not committed)")
    parser.add_argument("--only", choices=("altogether", "antarctic", "train"), action="append")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        parser.error("no GPU here: run with --tiny for the CPU smoke run (GPU figures are measured on a GPU only)")
    device = torch.device("cpu" if args.tiny else "cuda")
    args.out = args.out or str(HERE / ("RESULTS-tiny.md" if args.tiny else "RESULTS.md"))
    shapes = TINY if args.tiny else REAL
    only = set(args.only or ("altogether", "antarctic", "train"))
    started = time.perf_counter()
    rows: list[dict] = []
    if "altogether" in only:
        rows += bench_altogether(args.tiny, shapes, device)
    if "antarctic" in only:
        rows += bench_antarctic(args.tiny, shapes, device)
    if "train" in only:
        rows.append(bench_training_step(args.tiny, shapes, device))
    report = table(rows)
    seconds = time.perf_counter() - started
    header = (f"# GPU suite ({'toy shapes, CPU smoke run' if args.tiny else 'real shapes, random weights'})\n\n"
              f"Measured {datetime.date.today().isoformat()} on {machine(device)} by "
              f"`python benchmarks/gpu_suite.py{' --tiny' if args.tiny else ''}` in {seconds:.0f} s. Shapes: {shapes}.\n\n")
    Path(args.out).write_text(header + report + "\n", encoding="utf-8")
    print(report)
    print(f"gpu_suite: {len(rows)} rows on {machine(device)} in {seconds:.0f}s; report in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
