"""Batched antarctic captioning (retrieve -> BART beam search -> CLIP re-rank for 32 images at once) vs the
original's loop, dzryk/antarctic-captions `utils.py` `generate` (lines 68-100, restated in `gpu_suite.py`:
tables for the batch, then one image at a time through stock BART's `generate` and `clip_rescoring`), same
weights and cache (the same loop through this project's `model.generate` is reported too);
then sample-N with 1,000 candidates per image, whose peak memory must not grow with the number of images
(4 vs 16 images: one full generate call vs four); and sample-N for one 120-token table on a 6-layer 512-d BART,
stock `BartForConditionalGeneration.generate` (what the original's sampler.py calls: the encoder output and its
cross-attention keys and values repeated for each of the 1,000 candidates) vs this model's generate (one copy per
table), each in a fresh process, same sampled tokens checked.

The model is random but shaped like a scaled-down release (CLIP ViT + BART, beam 3 / return 3, k=10 table,
32-token captions), so the timing is the real code path; captions are nonsense. Generation runs to the full
32 tokens (EOS suppressed) in both modes so they do the same work.

    python benchmarks/bench_antarctic_generate.py --batch 32
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import torch
from _report import record
from gpu_suite import original_antarctic

from hf_captioners.antarctic import AntarcticCache, AntarcticForConditionalGeneration
from hf_captioners.registry import model_pipeline
from hf_captioners.toyworld.tiny_antarctic import tiny_config, tiny_processor, tiny_tokenizers, toy_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--cache-entries", type=int, default=50_000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="each mode is timed this many times, alternating; the best counts")
    parser.add_argument("--sample-only", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sample-wide", choices=("ours", "stock"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.sample_wide:
        return sample_wide(args.sample_wide)

    texts = toy_texts(60)
    clip_tok, bart_tok = tiny_tokenizers(texts)
    config = tiny_config(clip_tok, bart_tok, image_size=args.image_size, hidden=args.hidden, projection=128)
    config.bart_config.encoder_layers = config.bart_config.decoder_layers = 2
    config.clip_config.vision_config.num_hidden_layers = config.clip_config.text_config.num_hidden_layers = 2
    model = AntarcticForConditionalGeneration(config).eval()
    processor = tiny_processor(clip_tok, bart_tok, image_size=args.image_size)
    n = args.cache_entries
    model.set_cache(AntarcticCache([f"entry {i}" for i in range(n)], torch.randn(n, 128)))
    pixel_values = torch.randn(args.batch, 3, args.image_size, args.image_size)
    gen = {"generate_kwargs": {"min_new_tokens": 30, "max_new_tokens": 30}}
    params = sum(p.numel() for p in model.parameters())
    print(f"threads={torch.get_num_threads()} params={params / 1e6:.1f}M cache={n} batch={args.batch} "
          "beam 3 / return 3, 30 new tokens")

    pipe = model_pipeline(model, processor)
    if args.sample_only:
        return sample_only(pipe, pixel_values, args.sample_only)
    pipe.caption_pixels(pixel_values[:2], **gen)  # warm-up
    cpu = torch.device("cpu")
    modes = {
        "batched": lambda: pipe.caption_pixels(pixel_values, **gen),
        "original": lambda: original_antarctic(model, processor, pixel_values, cpu, gen["generate_kwargs"]),
        "loop, ours": lambda: original_antarctic(model, processor, pixel_values, cpu, gen["generate_kwargs"], model),
    }
    best, captions = dict.fromkeys(modes, float("inf")), {}
    for _ in range(args.repeats):  # alternating, so a slow spell of the machine hits every mode
        for mode, run in modes.items():
            start = time.perf_counter()
            captions[mode] = run()
            best[mode] = min(best[mode], time.perf_counter() - start)
    agree = min(sum(a == b for a, b in zip(captions["batched"], captions[mode])) for mode in modes)
    speedup = best["original"] / best["batched"]
    print(f"best of {args.repeats} runs each")
    print(f"original loop (utils.py generate, stock BART): {args.batch / best['original']:.2f} images/s "
          f"({best['original']:.1f} s)")
    print(f"the same loop through model.generate:          {args.batch / best['loop, ours']:.2f} images/s "
          f"({best['loop, ours']:.1f} s)")
    print(f"batched ({args.batch}):                                {args.batch / best['batched']:.2f} images/s "
          f"({best['batched']:.2f} s)")
    print(f"speed-up: {speedup:.1f}x the original, {best['loop, ours'] / best['batched']:.1f}x the loop through "
          f"model.generate (same caption for {agree}/{args.batch} images in every mode)")
    record(f"antarctic batched vs the original loop (batch {args.batch})", speedup, ">= 10x", speedup >= 10, "x")
    record("antarctic batched vs the same loop through model.generate", best["loop, ours"] / best["batched"], unit="x")
    record("antarctic identical captions", agree / args.batch, "= 1", agree == args.batch)

    peaks = {}
    # each in a fresh process (its peak resident memory is its own); at 1,000 candidates a generate call holds 4
    # images (max_sequences_per_generate=4096), so 4 images are one full call and 16 are four
    for images in (4, 16):
        out = subprocess.run([sys.executable, __file__, "--sample-only", str(images), "--hidden", str(args.hidden),
                              "--cache-entries", str(args.cache_entries), "--image-size", str(args.image_size)],
                             capture_output=True, text=True, check=True).stdout.split()
        peaks[images] = float(out[-1])
        print(f"sample-N, 1,000 candidates per image, {images} images: peak RSS {peaks[images]:.0f} MiB "
              f"({float(out[-2]):.1f} s)")
    growth = peaks[16] / peaks[4]
    record("sample-N 1,000: peak memory, 16 images / 4 images", growth, "<= 1.2 (flat)", growth <= 1.2, "x")

    wide = {}
    for mode in ("stock", "ours"):
        out = subprocess.run([sys.executable, __file__, "--sample-wide", mode], capture_output=True, text=True,
                             check=True).stdout.split()
        wide[mode] = (float(out[-3]), float(out[-2]), out[-1])
        print(f"sample-N, 1,000 candidates, one 120-token table, 6-layer 512-d BART, {mode}: {wide[mode][0]:.1f} s, "
              f"peak RSS {wide[mode][1]:.0f} MiB")
    record("sample-N 1,000 (6 x 512-d BART): stock BART generate / ours, seconds", wide["stock"][0] / wide["ours"][0],
           unit="x")
    record("sample-N 1,000 (6 x 512-d BART): stock BART generate / ours, peak memory",
           wide["stock"][1] / wide["ours"][1], unit="x")
    record("sample-N 1,000 (6 x 512-d BART): same sampled tokens", float(wide["stock"][2] == wide["ours"][2]), "= 1",
           wide["stock"][2] == wide["ours"][2])


def sample_wide(mode: str) -> None:
    """1,000 sampled candidates for one table; prints seconds, peak RSS (MiB) and a digest of the tokens."""
    import hashlib

    from transformers import BartForConditionalGeneration

    clip_tok, bart_tok = tiny_tokenizers(toy_texts(60))
    config = tiny_config(clip_tok, bart_tok, hidden=512, projection=64)
    bart = config.bart_config
    bart.encoder_layers = bart.decoder_layers = 6
    bart.encoder_attention_heads = bart.decoder_attention_heads = 8
    bart.encoder_ffn_dim = bart.decoder_ffn_dim = 2048
    model = AntarcticForConditionalGeneration(config).eval()
    generator = model
    if mode == "stock":
        generator = BartForConditionalGeneration(bart).eval()
        generator.load_state_dict(model.bart.state_dict())
        generator.generation_config = model.generation_config
    table = torch.randint(5, len(bart_tok), (1, 120), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(1)
    start = time.perf_counter()
    with torch.no_grad():
        out = generator.generate(input_ids=table, attention_mask=torch.ones_like(table), do_sample=True, num_beams=1,
                                 num_return_sequences=1000, min_new_tokens=8, max_new_tokens=8, max_length=None)
    seconds = time.perf_counter() - start
    digest = hashlib.sha256(out.numpy().tobytes()).hexdigest()[:16]
    print(f"{seconds:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} {digest}")


def sample_only(pipe, pixel_values, images: int) -> None:
    """1,000 sampled candidates for each of `images` images; prints seconds and peak RSS (MiB)."""
    torch.manual_seed(0)
    start = time.perf_counter()
    pipe.caption_pixels(pixel_values[:images], num_candidates=1000, generate_kwargs={
        "do_sample": True, "top_p": 0.9, "temperature": 0.7, "max_new_tokens": 16})
    print(f"{time.perf_counter() - start:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


if __name__ == "__main__":
    main()
