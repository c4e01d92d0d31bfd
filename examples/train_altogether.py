"""Train Altogether (or plain ClipCap with --no_alt_text) with accelerate.

Stage `pt` (alt-text pre-training) streams MetaCLIP-style webdataset shards: the target is the longest
deduplicated alt-text, the prompt another alt-text or "", dropped half the time.
Stage `ft` fine-tunes on Altogether-FT json (`round3` target, `alt` prompt, 50% prompt dropout) with its
OWN learning rate and schedule; the original's single cosine over PT+FT left FT at lr ~1e-9.

    accelerate launch examples/train_altogether.py --stage pt --train_shards 'tw/shards/train-*.tar' \\
        --vision_model backbones/clip --text_model backbones/lm --output_dir runs/pt --max_steps 500
    accelerate launch examples/train_altogether.py --stage ft --train_json tw/altogether_ft/train.json \\
        --image_root tw/images --resume runs/pt/final --output_dir runs/ft --num_epochs 2 --learning_rate 1e-4
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from hf_captioners.altogether.image_utils import ImageInputError, load_rgb_image
from hf_captioners.data.alt_text import alt_texts_from_metadata, names_shared
from hf_captioners.data.altogether_ft import as_dataset, read_altogether_ft
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

logger = logging.getLogger("train_altogether")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=("pt", "ft"), required=True)
    parser.add_argument("--train_shards", nargs="+", help="pt: shard paths / globs / brace patterns")
    parser.add_argument("--train_json", help="ft: Altogether-FT json ({'data': [...]})")
    parser.add_argument("--eval_json", help="Altogether-FT json for the final eval loss and CIDEr-D")
    parser.add_argument("--image_root", help="folder that img_path is relative to")
    parser.add_argument("--resume", help="start from a saved Altogether folder (e.g. the PT result)")
    parser.add_argument("--vision_model", help="CLIP checkpoint (e.g. facebook/metaclip-h14-fullcc2.5b)")
    parser.add_argument("--text_model", help="causal LM checkpoint (e.g. facebook/opt-1.3b)")
    parser.add_argument("--no_alt_text", action="store_true", help="plain ClipCap: prompt length 0, image only")
    parser.add_argument("--mapper_type", default="transformer", choices=("transformer", "mlp"))
    parser.add_argument("--prefix_length", type=int, default=40)
    parser.add_argument("--prompt_length", type=int, default=128)
    parser.add_argument("--mapper_num_layers", type=int, default=8)
    parser.add_argument("--mapper_num_heads", type=int, default=8)
    parser.add_argument("--freeze_text_model", action="store_true", help="ClipCap's frozen-GPT-2 variant")
    parser.add_argument("--prompt_dropout", type=float, default=0.5)
    parser.add_argument("--keep_named_prompts", action="store_true",
                        help="never drop the prompt of a record whose caption names what its alt-text names (a "
                             "capitalised word after the first): dropping it teaches the model to invent names")
    parser.add_argument("--precompute_image_embeds", action="store_true", help="ft: cache CLIP embeddings once")
    parser.add_argument("--shuffle_buffer", type=int, default=1000, help="pt: streaming shuffle buffer")
    parser.add_argument("--eval_max_new_tokens", type=int, default=64)
    parser.add_argument("--eval_batch_size", type=int, default=32)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    if args.stage == "pt" and not args.train_shards:
        parser.error("--stage pt needs --train_shards")
    if args.stage == "ft" and not (args.train_json and args.image_root):
        parser.error("--stage ft needs --train_json and --image_root")
    if not args.resume and not (args.vision_model and args.text_model):
        parser.error("pass --resume (a saved Altogether folder) or both --vision_model and --text_model")
    return args


def build_model(args):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from hf_captioners.altogether import AltogetherForConditionalGeneration, AltogetherProcessor

    if args.resume:
        model = AutoModelForImageTextToText.from_pretrained(args.resume, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(args.resume, trust_remote_code=True)
        return model, processor
    processor = AltogetherProcessor.from_backbones(
        args.vision_model, args.text_model, prefix_length=args.prefix_length,
        prompt_length=0 if args.no_alt_text else args.prompt_length,
    )
    model = AltogetherForConditionalGeneration.from_backbones(
        args.vision_model, args.text_model, processor=processor, mapper_type=args.mapper_type,
        clip_length=args.prefix_length, mapper_num_layers=args.mapper_num_layers,
        mapper_num_heads=args.mapper_num_heads, freeze_text_model=args.freeze_text_model,
    )
    return model, processor


class AltogetherCollator:
    """Records -> training batch. Bad records (unreadable image, no target text) are counted and dropped."""

    def __init__(self, processor, stage: str, seed: int, prompt_dropout: float, use_alt_text: bool,
                 image_root: str | None, bad: BadRecords, keep_named_prompts: bool = False):
        self.processor, self.stage, self.seed = processor, stage, seed
        self.keep_named_prompts = keep_named_prompts
        self.prompt_dropout, self.use_alt_text = prompt_dropout, use_alt_text
        self.image_root = Path(image_root) if image_root else None
        self.bad, self.epoch = bad, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _pt_texts(self, record, rng):
        texts = alt_texts_from_metadata(record.get("json") or {})
        if not texts:
            raise ValueError("no alt-text: nothing to learn")
        target = max(texts, key=len)
        others = [t for t in texts if t != target]
        return target, rng.choice(others) if others else ""

    def _image(self, record):
        if self.stage == "pt":
            raw = record.get("jpeg") or record.get("jpg") or record.get("png")
            if raw is None:
                raise ImageInputError("missing image")
            return load_rgb_image(raw.get("bytes") if isinstance(raw, dict) else raw, name=record.get("__key__"))
        if "image_embeds" in record:
            return None
        if not record.get("img_path"):
            raise ImageInputError("missing img_path")
        image = load_rgb_image(self.image_root / record["img_path"], name=record["img_path"])
        side = self.processor.image_processor.crop_size["height"]
        return image.resize((side, side), resample=3)  # FT squashes to a square, no crop

    def __call__(self, records):
        images, prompts, targets, embeds = [], [], [], []
        for index, record in enumerate(records):
            key = record.get("__key__") or record.get("key") or record.get("img_path") or index
            rng = example_rng(self.seed, self.epoch, key)
            try:
                if self.stage == "pt":
                    target, prompt = self._pt_texts(record, rng)
                else:
                    target, prompt = (record.get("round3") or "").strip(), record.get("alt") or ""
                    if not target:
                        raise ValueError("empty round3 caption")
                image = self._image(record)
            except (ImageInputError, ValueError, OSError) as error:
                self.bad.skip(key, f"{type(error).__name__}: {error}")
                continue
            dropped = rng.random() < self.prompt_dropout  # drawn for every record: the others' draws stay put
            if not self.use_alt_text or (dropped and not (self.keep_named_prompts and names_shared(prompt, target))):
                prompt = ""
            images.append(image)
            prompts.append(prompt or None)
            targets.append(target)
            if image is None:
                embeds.append(torch.tensor(record["image_embeds"]))
        if not targets:
            return {}
        batch = self.processor(images=None if embeds else images, alt_text=prompts, captions=targets, return_tensors="pt")
        if embeds:
            batch["image_embeds"] = torch.stack(embeds)
        return dict(batch)


def load_train_data(args, processor, model, accelerator, bad: BadRecords):
    import datasets

    if args.stage == "pt":
        from datasets.distributed import split_dataset_by_node

        from hf_captioners.data.shards import expand_shard_specs

        shards = expand_shard_specs(args.train_shards)
        stream = datasets.load_dataset("webdataset", data_files={"train": shards}, split="train", streaming=True)
        stream = stream.decode(False).shuffle(seed=args.seed, buffer_size=args.shuffle_buffer)
        stream = split_dataset_by_node(stream, accelerator.process_index, accelerator.num_processes)
        return stream, None
    table = as_dataset(read_altogether_ft(args.train_json, skip=bad.skip))
    if args.precompute_image_embeds:
        table = precompute_image_embeds(table, processor, model, args, accelerator)
    return table, len(table)


@torch.no_grad()
def precompute_image_embeds(table, processor, model, args, accelerator):
    """The CLIP tower is frozen, so its pooled embedding can be computed once instead of every epoch."""
    root = Path(args.image_root)
    side = processor.image_processor.crop_size["height"]
    vision = model.to(accelerator.device)

    def embed(batch):
        images = [load_rgb_image(root / p, name=p).resize((side, side), resample=3) for p in batch["img_path"]]
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"].to(accelerator.device)
        return {"image_embeds": vision.get_image_features(pixels).float().cpu().numpy()}

    with accelerator.main_process_first():
        return table.map(embed, batched=True, batch_size=64, desc="CLIP embeddings")


@torch.no_grad()
def evaluate(model, processor, args, accelerator) -> dict:
    """Eval loss (teacher forcing, with the alt-text) and CIDEr-D of greedy captions on --eval_json."""
    from hf_captioners.metrics import cider_d

    table = as_dataset(read_altogether_ft(args.eval_json))
    collate = AltogetherCollator(processor, "ft", args.seed, 0.0, not args.no_alt_text, args.image_root, BadRecords())
    model.eval()
    losses, predictions, references = [], [], []
    for start in range(0, len(table), args.eval_batch_size):
        records = [table[i] for i in range(start, min(start + args.eval_batch_size, len(table)))]
        batch = {k: v.to(accelerator.device) for k, v in collate(records).items()}
        if not batch:
            continue
        losses.append(model(**batch).loss.item())
        prompt_len = processor.prefix_length + processor.prompt_length
        inputs = {"input_ids": batch["input_ids"][:, :prompt_len], "attention_mask": batch["attention_mask"][:, :prompt_len],
                  "pixel_values": batch["pixel_values"]}
        out = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=args.eval_max_new_tokens)
        predictions += processor.batch_decode(out)
        references += [[r["round3"]] for r in records if (r.get("round3") or "").strip()]
    score = cider_d(predictions, references)["cider_d"] if len(predictions) > 1 else 0.0
    return {"eval_loss": sum(losses) / max(len(losses), 1), "eval_cider_d": score,
            "eval_examples": len(predictions), "eval_samples": list(zip(predictions[:5], (r[0] for r in references[:5])))}


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = train_config_from(args)
    accelerator = make_accelerator(cfg, cpu=args.cpu)
    started = time.perf_counter()
    model, processor = build_model(args)
    bad = BadRecords()
    data, num_examples = load_train_data(args, processor, model, accelerator, bad)
    collator = AltogetherCollator(processor, args.stage, args.seed, args.prompt_dropout, not args.no_alt_text,
                                  args.image_root, bad, keep_named_prompts=args.keep_named_prompts)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, shuffle=num_examples is not None,
                                         collate_fn=collator, num_workers=args.num_workers, drop_last=num_examples is not None)
    callbacks = [collator.set_epoch]
    if num_examples is None:
        callbacks.append(data.set_epoch)
        steps_per_epoch = None
    else:
        loader = accelerator.prepare(loader)
        steps_per_epoch = max(len(loader) // args.gradient_accumulation_steps, 1)
    optimizer = make_optimizer(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("stage %s: %d trainable parameters, %s examples", args.stage, trainable, num_examples or "streamed")

    def compute_loss(model, batch):
        # logits only where there are labels: every prompt has one length, so the captions are the last
        # columns, and the LM head and softmax over prefix and prompt positions would be thrown away
        labelled = (batch["labels"] != -100).any(dim=0).nonzero()
        keep = batch["labels"].shape[1] - int(labelled[0]) + 1 if len(labelled) else 0
        return model(**{k: v.to(accelerator.device) for k, v in batch.items()}, logits_to_keep=keep).loss

    result = train_loop(accelerator, model, optimizer, loader, cfg, compute_loss, steps_per_epoch, callbacks)
    unwrapped = accelerator.unwrap_model(model)
    summary = {"stage": args.stage, "steps": result.steps, "seconds": round(time.perf_counter() - started, 1),
               "first_loss": result.losses[0] if result.losses else None,
               "final_loss": sum(result.losses[-10:]) / len(result.losses[-10:]) if result.losses else None,
               "trainable_parameters": trainable, "bad_records": bad.summary()}
    if args.eval_json and accelerator.is_main_process:
        summary.update(evaluate(unwrapped, processor, args, accelerator))
    if accelerator.is_main_process:
        final = Path(args.output_dir) / "final"
        unwrapped.save_pretrained(final)
        processor.save_pretrained(final)
        atomic_write_json(Path(args.output_dir) / "train_summary.json", summary, indent=1)
        print(json.dumps({k: v for k, v in summary.items() if k != "eval_samples"}))
        print(f"train_altogether: stage {args.stage}, {result.steps} steps in {summary['seconds']}s, loss "
              f"{summary['first_loss']:.3f} -> {summary['final_loss']:.3f}, {bad.total} bad records skipped, saved {final}")
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
