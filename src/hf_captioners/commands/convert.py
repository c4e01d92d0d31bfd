"""`hf-captioners convert {open-clip,clipcap,altogether,antarctic}`: original checkpoints -> saved Transformers folders.

Every loader reads weights only (safetensors or `torch.load(weights_only=True)`). Heavy imports happen in `run`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["add_arguments", "run"]


def _clip_source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("CLIP (the original checkpoint does not contain it; give one)")
    group.add_argument("--clip", help="a transformers CLIP folder or Hub name (e.g. facebook/metaclip-h14-fullcc2.5b)")
    group.add_argument("--open-clip-checkpoint", help="an open_clip / OpenAI CLIP checkpoint file, converted on the fly")
    group.add_argument("--open-clip-model", help="its open_clip model name or preset (e.g. ViT-H-14-quickgelu, "
                       "openai-vit-b-16) or a JSON config file; default: read off the weights")  # fmt: skip


def _json_or_name(value: str | None):
    """A JSON file becomes a dict; anything else (a name or a folder) is passed through."""
    if value is not None and value.endswith(".json") and Path(value).is_file():
        return json.loads(Path(value).read_text(encoding="utf-8"))
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", required=True)

    p = sub.add_parser("open-clip", help="open_clip / OpenAI CLIP ViT -> transformers CLIPModel + processor files")
    p.add_argument("checkpoint", help="the .pt / .bin / .safetensors file")
    p.add_argument("out", help="output folder")
    p.add_argument("--model", help="open_clip model name, preset or JSON config file; default: read off the weights")
    p.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=None,
                   help="force the activation (OpenAI's weights use QuickGELU)")  # fmt: skip
    p.add_argument("--no-tokenizer", action="store_true", help="do not write the CLIP tokenizer")

    p = sub.add_parser("clipcap", help="ClipCap .pt -> Altogether model with prompt length 0")
    p.add_argument("checkpoint")
    p.add_argument("out")
    _clip_source(p)
    p.add_argument("--tokenizer", default="gpt2", help="GPT-2 tokenizer name or folder")
    p.add_argument("--text-config", help="GPT-2 config name/folder/JSON (default: GPT-2 small)")
    p.add_argument("--mapper-heads", type=int, default=8, help="transformer mapper heads (not in the weights)")
    p.add_argument("--prefix-length", type=int, help="check the mapper writes this many prefix tokens")
    p.add_argument("--normalize-prefix", action="store_true",
                   help="L2-normalise CLIP features (the transformer release was trained with --normalize_prefix)")
    p.add_argument("--frozen-lm", action="store_true",
                   help="keep GPT-2 frozen and in eval mode when training further (--only_prefix releases)")

    p = sub.add_parser("altogether", help="Altogether epoch_*.pt + a CLIP -> our model")
    p.add_argument("checkpoint")
    p.add_argument("out")
    _clip_source(p)
    p.add_argument("--tokenizer", default="facebook/opt-1.3b", help="OPT tokenizer name or folder")
    p.add_argument("--text-config", help="OPT config name/folder/JSON (default: facebook/opt-1.3b's)")
    p.add_argument("--prompt-length", type=int, default=128, help="alt-text prompt tokens (128 in the original)")
    p.add_argument("--caption-length", type=int, default=192, help="caption tokens (max_seq_len 320 - 128)")
    p.add_argument("--clean-alt-text", action="store_true",
                   help="unescape HTML and collapse whitespace in alt-texts (the original feeds them raw)")
    p.add_argument("--mapper-heads", type=int, default=8)

    p = sub.add_parser("antarctic", help="antarctic Lightning .ckpt + postcache .txt/.npy -> our model with its cache")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--cache-txt", help="the released cache's entries (one a line)")
    p.add_argument("--cache-npy", help="the released cache's CLIP embeddings (float32 [N, D])")
    p.add_argument("--bart-tokenizer", default="facebook/bart-large")
    p.add_argument("--clip-tokenizer", help="CLIP tokenizer folder (default: open_clip's bundled BPE)")
    p.add_argument("--clip-config", help="open_clip config JSON (default: read off the weights, 64-wide heads)")
    p.add_argument("--bart-config", help="BART config name/folder (default: bart-large's)")
    p.add_argument("--table-top-k", type=int, default=10)
    p.add_argument("--decoder-layout", choices=("original", "shift"), default="original",
                   help="how further training feeds BART the caption: the release's layout, or the one that "
                   "matches generation's start tokens (see AntarcticProcessor)")  # fmt: skip


def _load_clip(args):
    from hf_captioners.convert.altogether_original import load_clip

    return load_clip(clip=args.clip, open_clip_checkpoint=args.open_clip_checkpoint,
                     open_clip_model=_json_or_name(args.open_clip_model))  # fmt: skip


def run(args) -> int:
    if args.source == "open-clip":
        from hf_captioners.convert.open_clip_to_hf import convert_open_clip

        model, count = convert_open_clip(args.checkpoint, args.out, model=_json_or_name(args.model),
                                         quick_gelu=args.quick_gelu, with_tokenizer=not args.no_tokenizer)  # fmt: skip
        detail = f"CLIP {model.config.vision_config.hidden_act}"
    elif args.source == "clipcap":
        from hf_captioners.convert.clipcap import convert_clipcap

        model, _, count = convert_clipcap(args.checkpoint, _load_clip(args), tokenizer=args.tokenizer, out_dir=args.out,
                                          text_config=_json_or_name(args.text_config),
                                          mapper_num_heads=args.mapper_heads, prefix_length=args.prefix_length,
                                          normalize_prefix=args.normalize_prefix, freeze_text_model=args.frozen_lm)  # fmt: skip
        detail = f"ClipCap, {model.config.mapper_type} mapper, prefix {model.config.prefix_length}"
    elif args.source == "altogether":
        from hf_captioners.convert.altogether_original import convert_altogether

        model, _, count = convert_altogether(args.checkpoint, _load_clip(args), tokenizer=args.tokenizer,
                                             out_dir=args.out, text_config=_json_or_name(args.text_config),
                                             prompt_length=args.prompt_length, mapper_num_heads=args.mapper_heads,
                                             caption_length=args.caption_length, raw_text=not args.clean_alt_text)  # fmt: skip
        detail = f"Altogether, prefix {model.config.prefix_length} + prompt {model.config.prompt_length}"
    else:
        from hf_captioners.convert.antarctic_original import convert_antarctic

        bart_config = None
        if args.bart_config:
            from transformers import BartConfig

            bart_config = BartConfig.from_pretrained(args.bart_config)
        model, _, count = convert_antarctic(args.checkpoint, args.cache_txt, args.cache_npy,
                                            bart_tokenizer=args.bart_tokenizer, clip_tokenizer=args.clip_tokenizer,
                                            out_dir=args.out, clip_model_config=_json_or_name(args.clip_config),
                                            bart_config=bart_config, table_top_k=args.table_top_k,
                                            decoder_layout=args.decoder_layout)  # fmt: skip
        detail = f"antarctic, cache {len(model.cache) if model.cache is not None else 'none'}"
    print(f"converted {count:,} parameters from {args.checkpoint} ({detail}) -> {args.out}")
    return 0
