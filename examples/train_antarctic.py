"""Train antarctic-captions (LayerNorm tuning of BART over CLIP-retrieved n-gram tables) with accelerate.

COCO-style captions (Karpathy `dataset_coco.json` or COCO `captions_*.json`) -> the n-gram cache (loaded, or
built from the training captions as the release did) -> LayerNorm tuning through PEFT -> the MERGED model
(no peft needed to load it), its processor and cache in `output_dir/final`.

CLIP and the cache are frozen, so every image's top-k table never changes: the tables are retrieved ONCE
before training (batched, with a progress bar) and BART then trains on (table text -> caption) pairs, with
no CLIP forward per step. Each step's target is one of the image's captions, picked by an RNG seeded by
(seed, epoch, image), so a resumed run sees exactly what an uninterrupted one would.

Defaults are the release's: torch AdamW (lr 3e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on every
trained parameter), batch 16, top-k 10, ~6 epochs, no gradient clipping; its cosine schedule had T_max=1e5
but was stepped once per epoch, i.e. a constant lr, which we keep behind a short warmup. One deliberate fix:
the release fed the decoder `<s> caption` while generation starts `</s> <s>`; here the labels are
`<s> caption </s>` so the shifted decoder input starts exactly as generation does (checked at start-up).

    accelerate launch examples/train_antarctic.py --train_json tw/coco/dataset_coco.json --split train \\
        --image_root tw/images --clip_model backbones/clip --bart_model backbones/bart \\
        --eval_split eval --output_dir runs/antarctic --checkpointing_steps 200
With Hub access: --clip_model openai/clip-vit-base-patch16 --bart_model facebook/bart-large.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from hf_captioners.antarctic.image_utils import ImageInputError, load_rgb_image
from hf_captioners.data.coco import read_coco_captions
from hf_captioners.io_utils import atomic_write_json
from hf_captioners.training.loop import (
    BadRecords,
    add_train_arguments,
    example_rng,
    make_accelerator,
    make_optimizer,
    train_config_from,
    train_loop,
)

logger = logging.getLogger("train_antarctic")

DEFAULTS = dict(learning_rate=3e-4, batch_size=16, adam_beta2=0.999, adam_epsilon=1e-8, weight_decay=0.01,
                warmup_steps=50, lr_scheduler="constant_with_warmup", num_epochs=6, max_grad_norm=None)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_json", required=True, help="Karpathy dataset_coco.json or COCO captions json")
    parser.add_argument("--split", default="train,restval", help="Karpathy splits to train on (comma-separated)")
    parser.add_argument("--image_root", required=True, help="folder the json's image paths are relative to")
    parser.add_argument("--clip_model", help="CLIP checkpoint with its processor (openai/clip-vit-base-patch16)")
    parser.add_argument("--bart_model", help="BART checkpoint with its tokenizer (facebook/bart-large)")
    parser.add_argument("--resume", help="start from a saved antarctic folder (weights, processor, cache)")
    parser.add_argument("--cache", help="a saved cache folder, or the original entries .txt (with its .npy)")
    parser.add_argument("--cache_npy", help="the original .npy embeddings (default: the .txt's name, .npy)")
    parser.add_argument("--num_unigrams", type=int, default=25_000)
    parser.add_argument("--num_bigrams", type=int, default=25_000)
    parser.add_argument("--min_bigram_freq", type=int, default=3)
    parser.add_argument("--custom_entries", nargs="+", default=[], help="extra cache entries (e.g. names)")
    parser.add_argument("--top_k", type=int, default=None, help="table entries per image (default 10)")
    parser.add_argument("--ln_targets", choices=("faithful", "encoder_only"), default="faithful",
                        help="faithful: encoder LNs + decoder cross-attention LNs, as the release trained")
    parser.add_argument("--eval_json", help="captions json for the final eval (default: --train_json; all of its "
                        "images unless --eval_split)")
    parser.add_argument("--eval_split", help="Karpathy split for the final eval loss and CIDEr-D (e.g. test)")
    parser.add_argument("--eval_max_images", type=int, default=None)
    parser.add_argument("--eval_max_new_tokens", type=int, default=None, help="default: the model's 32 tokens")
    parser.add_argument("--eval_batch_size", type=int, default=32)
    parser.add_argument("--retrieval_batch_size", type=int, default=64)
    parser.add_argument("--decoder_layout", choices=("shift", "original"), default=None,
                        help="caption layout for a new model (default shift; --resume keeps the folder's). 'original' "
                        "also generates as the release did: no forced <s>")  # fmt: skip
    add_train_arguments(parser, **DEFAULTS)
    args = parser.parse_args(argv)
    if not args.resume and not (args.clip_model and args.bart_model):
        parser.error("pass --resume (a saved antarctic folder) or both --clip_model and --bart_model")
    return args


# ---- data ------------------------------------------------------------------------------------------------
class ImageFiles(torch.utils.data.Dataset):
    """Decodes and preprocesses one image per item (in DataLoader workers); failures come back as text."""

    def __init__(self, records, image_processor):
        self.records, self.image_processor = records, image_processor

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        record = self.records[index]
        try:
            image = load_rgb_image(record["path"], name=record["path"])
            return index, self.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
        except (ImageInputError, OSError, ValueError) as error:
            return index, f"{type(error).__name__}: {error}"


def iterate_images(records, processor, batch_size: int, num_workers: int, desc: str, disable: bool):
    """Yields (record indices, pixel_values) batches of the readable images and (index, reason) failures."""
    from tqdm.auto import tqdm

    loader = torch.utils.data.DataLoader(ImageFiles(records, processor.image_processor), batch_size=batch_size,
                                         num_workers=num_workers, collate_fn=list)
    for items in tqdm(loader, desc=desc, disable=disable):
        good = [(i, px) for i, px in items if isinstance(px, torch.Tensor)]
        failed = [(i, px) for i, px in items if not isinstance(px, torch.Tensor)]
        yield [i for i, _ in good], torch.stack([px for _, px in good]) if good else None, failed


@torch.no_grad()
def retrieve_tables(model, retriever, processor, records, args, disable_progress: bool):
    """The frozen CLIP + cache give each image a fixed table: retrieve them all once, in batches."""
    tables, failures = {}, []
    for indices, pixels, failed in iterate_images(records, processor, args.retrieval_batch_size, args.num_workers,
                                                  "retrieving tables", disable_progress):
        failures += [(records[i]["key"], reason) for i, reason in failed]
        if pixels is None:
            continue
        _, linearized, _ = retriever.retrieve(model.get_image_features(pixels), top_k=args.top_k)
        for i, table in zip(indices, linearized):
            tables[records[i]["key"]] = table
    return tables, failures


class TableCaptionCollator:
    """(table, captions) examples -> BART batch; the caption is drawn per (seed, epoch, image)."""

    def __init__(self, processor, seed: int):
        self.processor, self.seed, self.epoch = processor, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, examples):
        targets = [example_rng(self.seed, self.epoch, ex["key"]).choice(ex["captions"]) for ex in examples]
        return dict(self.processor(tables=[ex["table"] for ex in examples], text_target=targets))


# ---- model -----------------------------------------------------------------------------------------------
def build_model(args):
    from transformers import AutoProcessor, BartForConditionalGeneration, CLIPModel

    from hf_captioners.antarctic import AntarcticForConditionalGeneration, AntarcticProcessor

    if args.resume:
        model = AntarcticForConditionalGeneration.from_pretrained(args.resume, load_cache=not args.cache)
        processor = AntarcticProcessor.from_pretrained(args.resume)
    else:
        clip = CLIPModel.from_pretrained(args.clip_model)
        bart = BartForConditionalGeneration.from_pretrained(args.bart_model)
        clip_processor = AutoProcessor.from_pretrained(args.clip_model)
        model = AntarcticForConditionalGeneration.from_backbones(clip, bart)
        from transformers import AutoTokenizer

        config = model.config
        processor = AntarcticProcessor(
            clip_processor.image_processor, AutoTokenizer.from_pretrained(args.bart_model), clip_processor.tokenizer,
            table_separator=config.table_separator, encoder_max_length=config.encoder_max_length,
            decoder_max_length=config.decoder_max_length,
            clip_max_length=config.clip_config.text_config.max_position_embeddings,
        )
    if args.decoder_layout is not None:
        processor.decoder_layout = args.decoder_layout
        if args.decoder_layout == "original":
            model.generation_config.forced_bos_token_id = None
    args.top_k = args.top_k or model.config.table_top_k
    model.config.table_top_k = args.top_k
    return model, processor


def check_decoder_start(model, processor) -> None:
    """Training feeds BART shift_right(labels); generation starts from decoder_start then forced <s>. The two
    must agree, or the model learns from one prefix and is asked to continue another."""
    from transformers.models.bart.modeling_bart import shift_tokens_right

    if getattr(processor, "decoder_layout", "shift") == "original":
        logger.warning("decoder_layout 'original' (the released model's): the decoder trains from <s> while "
                       "generation starts from decoder_start_token_id, as the original did")  # fmt: skip
        return
    bart = model.config.bart_config
    labels = processor(tables=["a | "], text_target=["a caption"])["labels"]
    fed = shift_tokens_right(labels, bart.pad_token_id, bart.decoder_start_token_id)[0, :2].tolist()
    gen = model.generation_config
    starts = [gen.decoder_start_token_id, gen.forced_bos_token_id]
    if fed != starts:
        raise ValueError(f"training would feed the decoder {fed} but generation starts with {starts} "
                         "(decoder_start_token_id, forced_bos_token_id): fix the tokenizer or generation_config")


def get_cache(model, processor, records, args, accelerator):
    """--cache, else the resumed model's, else built from the training captions (on the main process, which
    saves it for the others). --custom_entries are embedded and appended. Returns (cache, its retriever)."""
    from hf_captioners.antarctic import AntarcticCache, AntarcticRetriever

    encoder = AntarcticRetriever(None, model.clip, processor).encode
    shared = Path(args.output_dir) / "cache"
    if args.cache:
        path = Path(args.cache)
        if path.suffix == ".txt":
            cache = AntarcticCache.from_original(path, args.cache_npy or path.with_suffix(".npy"), encoder)
        else:
            cache = AntarcticCache.from_pretrained(path, encoder)
    elif model.cache is not None:
        cache = model.cache
        cache.text_encoder = encoder
    else:
        with accelerator.main_process_first():
            if accelerator.is_main_process:
                corpus = [c for r in records for c in r["captions"]]
                cache = AntarcticCache.from_corpus(corpus, encoder, args.num_unigrams, args.num_bigrams,
                                                   args.min_bigram_freq)
                cache.save_pretrained(shared)
            else:
                cache = AntarcticCache.from_pretrained(shared, encoder)
    new = [e for e in dict.fromkeys(args.custom_entries) if e not in set(cache.entries)]
    if len(new) < len(args.custom_entries):
        logger.info("%d custom entries were already in the cache", len(args.custom_entries) - len(new))
    if new:
        cache.add(new, text_encoder=encoder)
    model.set_cache(cache)
    return cache, AntarcticRetriever.from_model(model, processor)


def get_tables(model, retriever, processor, records, args, accelerator, bad: BadRecords):
    """Tables are computed by the main process and shared through `output_dir/tables.json`."""
    path = Path(args.output_dir) / "tables.json"
    with accelerator.main_process_first():
        if accelerator.is_main_process:
            tables, failures = retrieve_tables(model, retriever, processor, records, args, False)
            atomic_write_json(path, {"top_k": args.top_k, "tables": tables, "failures": failures})
        else:
            saved = json.loads(path.read_text(encoding="utf-8"))
            tables, failures = saved["tables"], saved["failures"]
    for key, reason in failures:
        bad.skip(key, reason)
    return tables


# ---- evaluation ------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model, processor, args, device) -> dict:
    """Eval loss over every (table, reference) pair and CIDEr-D of the re-ranked captions."""
    from hf_captioners.metrics import cider_d
    from hf_captioners.registry import model_pipeline

    bad = BadRecords()
    records = read_coco_captions(args.eval_json or args.train_json, args.image_root, args.eval_split, skip=bad.skip)
    records = records[: args.eval_max_images]
    model.eval()
    gen = {"max_new_tokens": args.eval_max_new_tokens} if args.eval_max_new_tokens else {}
    pipe = model_pipeline(model, processor)
    loss_sum, tokens, predictions, references = 0.0, 0, [], []
    for indices, pixels, failed in iterate_images(records, processor, args.eval_batch_size, 0, "evaluating", False):
        for i, reason in failed:
            bad.skip(records[i]["key"], reason)
        if pixels is None:
            continue
        results = pipe.caption_pixels(pixels, top_k=args.top_k, generate_kwargs=gen, return_candidates=True)
        pairs = [(r["table"], c) for i, r in zip(indices, results) for c in records[i]["captions"]]
        for start in range(0, len(pairs), args.eval_batch_size):
            chunk = pairs[start : start + args.eval_batch_size]
            batch = processor(tables=[t for t, _ in chunk], text_target=[c for _, c in chunk]).to(device)
            count = int((batch["labels"] != -100).sum())
            loss_sum += model(**batch).loss.item() * count
            tokens += count
        predictions += [r["caption"] for r in results]
        references += [records[i]["captions"] for i in indices]
    score = cider_d(predictions, references)["cider_d"] if len(predictions) > 1 else 0.0
    return {"eval_loss": loss_sum / max(tokens, 1), "eval_cider_d": score, "eval_images": len(predictions),
            "eval_bad_records": bad.summary(),
            "eval_samples": [[p, r[0]] for p, r in zip(predictions[:5], references[:5])]}


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = train_config_from(args)
    accelerator = make_accelerator(cfg, cpu=args.cpu)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    bad = BadRecords()
    records = read_coco_captions(args.train_json, args.image_root, args.split, skip=bad.skip)
    model, processor = build_model(args)
    check_decoder_start(model, processor)
    model.to(accelerator.device).eval()
    cache, retriever = get_cache(model, processor, records, args, accelerator)
    table_started = time.perf_counter()
    tables = get_tables(model, retriever, processor, records, args, accelerator, bad)
    table_seconds = time.perf_counter() - table_started
    examples = [{"key": r["key"], "table": tables[r["key"]], "captions": r["captions"]}
                for r in records if r["key"] in tables]
    logger.info("%d training images (%d captions), cache of %d entries, top-%d tables in %.1fs", len(examples),
                sum(len(e["captions"]) for e in examples), len(cache), args.top_k, table_seconds)

    from hf_captioners.training.ln_tuning import merge_ln_tuning, wrap_for_ln_tuning

    peft_model = wrap_for_ln_tuning(model, args.ln_targets)
    collator = TableCaptionCollator(processor, args.seed)
    loader = torch.utils.data.DataLoader(examples, batch_size=args.batch_size, shuffle=True, collate_fn=collator,
                                         num_workers=args.num_workers, drop_last=True)
    loader = accelerator.prepare(loader)
    if len(loader) == 0:
        raise ValueError(f"{len(examples)} usable images per batch of {args.batch_size} x {accelerator.num_processes} "
                         "processes: not one full batch; lower --batch_size")
    steps_per_epoch = max(len(loader) // args.gradient_accumulation_steps, 1)
    optimizer = make_optimizer(peft_model, cfg, decay_all=True)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)

    def compute_loss(model, batch):
        return model(**{k: v.to(accelerator.device) for k, v in batch.items()}).loss

    result = train_loop(accelerator, peft_model, optimizer, loader, cfg, compute_loss, steps_per_epoch,
                        [collator.set_epoch])
    summary = {"steps": result.steps, "seconds": round(time.perf_counter() - started, 1),
               "table_seconds": round(table_seconds, 2), "train_images": len(examples), "cache_entries": len(cache),
               "top_k": args.top_k, "ln_targets": args.ln_targets, "trainable_parameters": trainable,
               "first_loss": result.losses[0] if result.losses else None,
               "final_loss": sum(result.losses[-10:]) / len(result.losses[-10:]) if result.losses else None,
               "bad_records": bad.summary()}
    if accelerator.is_main_process:
        merged = merge_ln_tuning(accelerator.unwrap_model(peft_model)).eval()
        if args.eval_json or args.eval_split:
            summary.update(evaluate(merged, processor, args, accelerator.device))
        final = Path(args.output_dir) / "final"
        merged.save_pretrained(final)
        processor.save_pretrained(final)
        atomic_write_json(Path(args.output_dir) / "train_summary.json", summary, indent=1)
        print(json.dumps({k: v for k, v in summary.items() if k != "eval_samples"}))
        cider = f", eval CIDEr-D {summary['eval_cider_d']:.3f}" if "eval_cider_d" in summary else ""
        loss = (f"loss {summary['first_loss']:.3f} -> {summary['final_loss']:.3f}" if result.losses
                else "no steps to take")
        print(f"train_antarctic: {result.steps} steps in {summary['seconds']}s, {loss}{cider}, "
              f"{bad.total} bad records skipped, saved {final}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
