"""Batched KV-cache generation (`model.generate`, batch 32) vs ClipCap-style decoding (batch 1, the whole
prefix + prompt + caption recomputed by the LM at every step, logits for every position), same weights.

The model is random but GPT-2-small-shaped (768-d, 12 heads, 50,257-token vocabulary) with few layers so
the comparison runs in about a minute on a CPU; the layout is Altogether's ([prefix][alt-text prompt]
[caption]) at reduced lengths. Greedy decoding; both modes must produce the same tokens. The ClipCap
loop runs on the first `--baseline-examples` inputs (its cost per example does not depend on the others)
and its tokens/s is compared with the batched run over all `--batch` inputs.

    python benchmarks/bench_altogether_generate.py --batch 32
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModelForCausalLM, CLIPVisionModelWithProjection, GPT2Config

from hf_captioners.altogether import AltogetherForConditionalGeneration, AltogetherProcessor
from hf_captioners.toyworld.tiny_altogether import tiny_tokenizer, tiny_vision_config, toy_texts


@torch.no_grad()
def clipcap_greedy(model, processor, pixel_values, alt_text: str, max_new_tokens: int, last_only=False) -> list[int]:
    """The original decoding loop: no cache, one example, full forward over the growing sequence (and, as
    the original, vocabulary logits for every position unless `last_only`)."""
    prompt = processor(alt_text=alt_text)["input_ids"][:, model.config.prefix_length :]
    embed = model.language_model.get_input_embeddings()
    sequence = torch.cat([model.get_prefix_embeds(pixel_values=pixel_values), embed(prompt)], dim=1)
    tokens = []
    for _ in range(max_new_tokens):
        keep = 1 if last_only else 0
        token = model.language_model(inputs_embeds=sequence, use_cache=False, logits_to_keep=keep).logits[:, -1].argmax(-1)
        tokens.append(int(token))
        if tokens[-1] == processor.tokenizer.eos_token_id:
            break
        sequence = torch.cat([sequence, embed(token[:, None])], dim=1)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--baseline-examples", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--prefix-length", type=int, default=10)
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)

    texts = toy_texts(60)
    processor = AltogetherProcessor.from_backbones(
        32, tiny_tokenizer(texts=texts), prefix_length=args.prefix_length, prompt_length=args.prompt_length
    )
    tok = processor.tokenizer
    lm = AutoModelForCausalLM.from_config(
        GPT2Config(
            vocab_size=args.vocab, n_embd=args.hidden, n_layer=args.layers, n_head=args.heads, n_positions=1024,
            eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )  # fmt: skip
    )
    vision = CLIPVisionModelWithProjection(tiny_vision_config(32, hidden=64, projection_dim=512))
    model = AltogetherForConditionalGeneration.from_backbones(
        vision, lm, processor=processor, mapper_num_layers=2, mapper_num_heads=args.heads,
        clip_length=args.prefix_length,
    ).eval()  # fmt: skip
    # random GPT-2 init gives near-flat logits; sharpen them so greedy choices are not decided by rounding
    model.language_model.lm_head.weight.data.mul_(8)

    alt_texts = texts[: args.batch]
    pixel_values = torch.rand(args.batch, 3, 32, 32)
    inputs = processor(alt_text=alt_texts)
    inputs["pixel_values"] = pixel_values
    gen = {"do_sample": False, "max_new_tokens": args.new_tokens}
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"threads={torch.get_num_threads()} params={n_params / 1e6:.1f}M (LM {args.layers} layers x {args.hidden}-d, "
        f"vocab {args.vocab}) prefix={args.prefix_length} prompt={args.prompt_length} new tokens={args.new_tokens}"
    )

    with torch.no_grad():
        model.generate(**{k: v[:2] for k, v in inputs.items()}, **{**gen, "max_new_tokens": 2})
        start = time.perf_counter()
        batched = model.generate(**inputs, **gen)
        t_batched = time.perf_counter() - start
    eos, prompt_len = tok.eos_token_id, inputs["input_ids"].shape[1]
    batched_tokens = [row[prompt_len:] for row in batched.tolist()]
    batched_tokens = [row[: row.index(eos) + 1] if eos in row else row for row in batched_tokens]

    n = min(args.baseline_examples, args.batch)
    batched_tps = sum(map(len, batched_tokens)) / t_batched
    clipcap_greedy(model, processor, pixel_values[:1], alt_texts[0], 2)  # warm-up
    for label, last_only in (("ClipCap-style loop (batch 1, no cache)", False), ("  same, logits of last position only", True)):
        start = time.perf_counter()
        looped = [
            clipcap_greedy(model, processor, pixel_values[i : i + 1], alt_texts[i], args.new_tokens, last_only)
            for i in range(n)
        ]
        t_loop = time.perf_counter() - start
        same = sum(a == b for a, b in zip(looped, batched_tokens))
        loop_tps = sum(map(len, looped)) / t_loop
        print(f"{label}: {loop_tps:8.1f} tokens/s ({n} examples, {t_loop:.1f} s); "
              f"batched is {batched_tps / loop_tps:.1f}x faster; identical greedy tokens {same}/{n}")
    print(f"generate, KV cache, batch {args.batch}: {batched_tps:8.1f} tokens/s ({args.batch} examples, {t_batched:.1f} s)")


if __name__ == "__main__":
    main()
