"""`hf-captioners stories`: caption images with an antarctic model, then continue each caption into a story."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lm", required=True, help="causal LM folder or Hub name (AutoModelForCausalLM)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--caption", action="append", help="a caption to continue (repeatable)")
    source.add_argument("--images", nargs="+", help="image files, captioned first with --captioner")
    parser.add_argument("--captioner", help="antarctic model folder (needed with --images)")
    parser.add_argument("--prompt-template", default="Once upon a time there was {caption}")
    parser.add_argument("--max-new-tokens", type=int, default=60)
    parser.add_argument("--do-sample", action="store_true")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trust-remote-code", action="store_true")


def run(args: argparse.Namespace) -> int:
    import logging

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from hf_captioners.stories import tell_stories

    log = logging.getLogger("hf_captioners.stories")
    torch.manual_seed(args.seed)
    names, captions, failed = [], [], 0
    if args.images:
        if not args.captioner:
            raise SystemExit("stories: --images needs --captioner")
        captioner = pipeline("image-to-text", model=args.captioner, trust_remote_code=True)
        for path in args.images:
            try:
                captions.append(captioner(path)[0]["generated_text"])
                names.append(path)
            except ValueError as error:
                failed += 1
                log.error("skipping %s: %s", path, error)
    else:
        captions, names = list(args.caption), [f"caption {i}" for i in range(len(args.caption))]
    tokenizer = AutoTokenizer.from_pretrained(args.lm, trust_remote_code=args.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(args.lm, trust_remote_code=args.trust_remote_code).eval()
    kwargs = {"max_new_tokens": args.max_new_tokens, "do_sample": args.do_sample}
    if args.do_sample:
        kwargs.update(temperature=args.temperature, top_p=args.top_p)
    stories = tell_stories(captions, model, tokenizer, args.prompt_template, **kwargs) if captions else []
    for name, caption, story in zip(names, captions, stories):
        print(json.dumps({"input": name, "caption": caption, "story": story}, ensure_ascii=False))
    print(f"stories: {len(stories)} stories written, {failed} inputs skipped")
    return 0 if stories or not failed else 1
