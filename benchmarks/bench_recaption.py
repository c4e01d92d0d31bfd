"""Re-captioning data-path overhead and memory: `caption_shards` end to end vs `model.generate` on
pre-loaded batches (same model, same images, same greedy captions), and peak RSS as the shard count grows.

    python benchmarks/bench_recaption.py [--images-per-shard 200] [--shards 8]

Target (issue 7): end-to-end throughput within 10% of generate alone; peak memory flat in shard count.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def build_model(out: Path, hidden: int, layers: int) -> Path:
    """A toy-sized Altogether; `hidden`/`layers` set the LM's cost per token, i.e. how much generation work
    the data path has to hide (a real OPT-1.3B costs orders of magnitude more per image than decoding)."""
    from transformers import AutoModelForCausalLM, CLIPVisionModelWithProjection, GPT2Config

    from hf_captioners.altogether import AltogetherForConditionalGeneration, AltogetherProcessor
    from hf_captioners.toyworld.tiny_altogether import tiny_tokenizer, tiny_vision_config

    tokenizer = tiny_tokenizer()
    processor = AltogetherProcessor.from_backbones(64, tokenizer, prefix_length=10, prompt_length=32)
    torch.manual_seed(0)
    vision = CLIPVisionModelWithProjection(tiny_vision_config(64))
    text = AutoModelForCausalLM.from_config(GPT2Config(
        vocab_size=len(processor.tokenizer), n_embd=hidden, n_layer=layers, n_head=max(2, hidden // 64),
        n_positions=256, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    model = AltogetherForConditionalGeneration.from_backbones(
        vision, text, processor=processor, clip_length=10, mapper_num_layers=2, mapper_num_heads=2)
    model.generation_config.update(do_sample=False, temperature=1.0, top_p=1.0, max_new_tokens=24, min_new_tokens=24)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def preloaded_generate(model_dir: Path, shards: list[str], batch_size: int) -> tuple[float, int]:
    from PIL import Image

    from hf_captioners.data.shards import Record, iter_shard_records
    from hf_captioners.recaption.adapters import load_captioner

    captioner = load_captioner(str(model_dir))
    records = [r for s in shards for r in iter_shard_records(s) if isinstance(r, Record)]
    features = [captioner.preprocess(Image.open(io.BytesIO(r.image_bytes)).convert("RGB"), r.alt_texts) for r in records]
    batches = [captioner.collate(features[i : i + batch_size]) for i in range(0, len(features), batch_size)]
    start = time.perf_counter()
    count = sum(len(captioner.generate(batch)) for batch in batches)
    return time.perf_counter() - start, count


def end_to_end(model_dir: Path, shards: list[str], batch_size: int, out: Path) -> tuple[float, int]:
    from hf_captioners.recaption.adapters import load_captioner
    from hf_captioners.recaption.engine import caption_shards

    captioner = load_captioner(str(model_dir))
    start = time.perf_counter()
    summary = caption_shards(captioner, shards, out, batch_size=batch_size, num_workers=1, progress=False)
    return time.perf_counter() - start, summary.captioned


def peak_rss_mib(model_dir: Path, pattern: str, out: Path) -> float:
    code = (
        "import resource, sys\n"
        "from hf_captioners.recaption.adapters import load_captioner\n"
        "from hf_captioners.recaption.engine import caption_shards, expand_shard_specs\n"
        f"c = load_captioner({str(model_dir)!r})\n"
        f"caption_shards(c, expand_shard_specs({pattern!r}), {str(out)!r}, batch_size=32, num_workers=1, progress=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    own, children = map(int, result.stdout.split()[-2:])
    return max(own, children) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images-per-shard", type=int, default=200)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256, help="LM width (32 makes generation ~1 ms/image)")
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)  # main process generates on one core, the DataLoader worker decodes on the other

    from hf_captioners.toyworld import generate_toyworld

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = args.shards * args.images_per_shard
        generate_toyworld(root / "tw", splits={"train": n}, formats=("shards",), shard_size=args.images_per_shard, progress=False)
        shards = sorted(str(p) for p in (root / "tw" / "shards").glob("train-*.tar"))
        model_dir = build_model(root / "model", args.hidden, args.layers)

        base_s, base_n = preloaded_generate(model_dir, shards, args.batch_size)
        e2e_s, e2e_n = end_to_end(model_dir, shards, args.batch_size, root / "out")
        assert base_n == e2e_n == n
        base_rate, e2e_rate = base_n / base_s, e2e_n / e2e_s
        overhead = base_rate / e2e_rate - 1

        memory = {}
        for count in (1, args.shards // 2, args.shards):
            pattern = str(root / "tw" / "shards" / f"train-{{000000..{count - 1:06d}}}.tar")
            memory[count] = round(peak_rss_mib(model_dir, pattern, root / f"mem{count}"), 1)

    result = {
        "images": n,
        "lm": {"hidden": args.hidden, "layers": args.layers, "new_tokens": 24},
        "generate_on_preloaded_batches_images_per_s": round(base_rate, 1),
        "caption_shards_end_to_end_images_per_s": round(e2e_rate, 1),
        "data_path_overhead": round(overhead, 4),
        "peak_rss_mib_by_shard_count": memory,
    }
    print(json.dumps(result, indent=1))
    print(
        f"bench_recaption: end to end {e2e_rate:.1f} img/s vs generate alone {base_rate:.1f} img/s -> overhead "
        f"{overhead:+.1%} (target <= 10%); peak RSS {memory} MiB by shard count"
    )


if __name__ == "__main__":
    main()
