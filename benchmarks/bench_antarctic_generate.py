"""Batched antarctic captioning (retrieve -> BART beam search -> CLIP re-rank for 32 images at once) vs the
original's loop, dzryk/antarctic-captions `utils.py` `generate` (lines 68-100, restated in `gpu_suite.py`:
tables for the batch, then one image at a time through `generate` and `clip_rescoring`), same weights and cache;
then sample-N with 1,000 candidates per image, whose peak memory must not grow with the number of images
(4 vs 16 images: one full generate call vs four).

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
    args = parser.parse_args()
    torch.manual_seed(0)

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
    t_batched = t_loop = float("inf")
    for _ in range(args.repeats):  # alternating, so a slow spell of the machine hits both modes
        start = time.perf_counter()
        batched = pipe.caption_pixels(pixel_values, **gen)
        t_batched = min(t_batched, time.perf_counter() - start)
        start = time.perf_counter()
        looped = original_antarctic(model, processor, pixel_values, torch.device("cpu"), gen["generate_kwargs"])
        t_loop = min(t_loop, time.perf_counter() - start)
    agree = sum(a == b for a, b in zip(batched, looped))
    speedup = t_loop / t_batched
    print(f"best of {args.repeats} runs each")
    print(f"original loop (utils.py generate): {args.batch / t_loop:.2f} images/s ({t_loop:.1f} s)")
    print(f"batched ({args.batch}):                    {args.batch / t_batched:.2f} images/s ({t_batched:.1f} s)")
    print(f"speed-up: {speedup:.1f}x  (same caption for {agree}/{args.batch} images)")
    record(f"antarctic batched vs the original loop (batch {args.batch})", speedup, ">= 10x", speedup >= 10, "x")
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


def sample_only(pipe, pixel_values, images: int) -> None:
    """1,000 sampled candidates for each of `images` images; prints seconds and peak RSS (MiB)."""
    torch.manual_seed(0)
    start = time.perf_counter()
    pipe.caption_pixels(pixel_values[:images], num_candidates=1000, generate_kwargs={
        "do_sample": True, "top_p": 0.9, "temperature": 0.7, "max_new_tokens": 16})
    print(f"{time.perf_counter() - start:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


if __name__ == "__main__":
    main()
