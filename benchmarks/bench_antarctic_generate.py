"""Batched antarctic captioning (retrieve -> BART beam search -> CLIP re-rank for 32 images at once) vs the
original's loop over one image at a time, on the same weights and cache.

The model is random but shaped like a scaled-down release (CLIP ViT + BART, beam 3 / return 3, k=10 table,
32-token captions), so the timing is the real code path; captions are nonsense. Generation runs to the full
32 tokens (EOS suppressed) in both modes so they do the same work.

    python benchmarks/bench_antarctic_generate.py --batch 32
"""

from __future__ import annotations

import argparse
import time

import torch

from hf_captioners.antarctic import AntarcticCache, AntarcticForConditionalGeneration
from hf_captioners.registry import model_pipeline
from hf_captioners.toyworld.tiny_antarctic import tiny_config, tiny_processor, tiny_tokenizers, toy_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--cache-entries", type=int, default=50_000)
    parser.add_argument("--image-size", type=int, default=64)
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
    pipe.caption_pixels(pixel_values[:2], **gen)  # warm-up
    start = time.perf_counter()
    batched = pipe.caption_pixels(pixel_values, **gen)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    looped = [pipe.caption_pixels(pixel_values[i : i + 1], **gen)[0] for i in range(args.batch)]
    t_loop = time.perf_counter() - start
    agree = sum(a == b for a, b in zip(batched, looped))
    print(f"one image at a time: {args.batch / t_loop:.2f} images/s ({t_loop:.1f} s)")
    print(f"batched ({args.batch}):        {args.batch / t_batched:.2f} images/s ({t_batched:.1f} s)")
    print(f"speed-up: {t_loop / t_batched:.1f}x  (same caption for {agree}/{args.batch} images)")


if __name__ == "__main__":
    main()
