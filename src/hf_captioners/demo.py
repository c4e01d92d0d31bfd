"""`hf-captioners demo`: the toy-world reproduction of both papers' claims, end to end on a CPU.

toy world -> toy backbones (CLIP and causal LM; BART later, beside ClipCap) -> Altogether PT -> FT,
ClipCap (no alt-text), antarctic (cache + LN tuning) -> caption the eval split (and its shards) -> metrics
-> `results/` (results.md, results.json, plot.png, samples.html) -> reload the saved folders through
AutoModel and the pipelines. Training runs the repository's own example scripts, as a user would.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class Scale:
    """Sizes and step counts of one demo run."""

    train: int
    eval: int
    backbone: int
    backbone_steps: dict
    pt_steps: int
    ft_epochs: int
    ft_max_steps: int | None
    antarctic_steps: int
    cache_size: int
    num_candidates: int
    batch_size: int = 32


SCALES = {
    "full": Scale(20000, 500, 10000, {}, pt_steps=300, ft_epochs=4, ft_max_steps=None, antarctic_steps=1000,
                  cache_size=2000, num_candidates=16),
    "fast": Scale(3000, 200, 3000, {"fast": True}, pt_steps=40, ft_epochs=1, ft_max_steps=90,
                  antarctic_steps=80, cache_size=1000, num_candidates=8),
    "tiny": Scale(64, 16, 64, {"steps": 3}, pt_steps=2, ft_epochs=1, ft_max_steps=2,
                  antarctic_steps=2, cache_size=200, num_candidates=2, batch_size=8),
}
MAPPER = ["--prefix_length", "10", "--prompt_length", "32", "--mapper_num_layers", "2", "--mapper_num_heads", "4"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results", help="output folder")
    parser.add_argument("--fast", action="store_true", help="a smoke run (about 3 minutes)")
    parser.add_argument("--scale", choices=sorted(SCALES), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--update-readme", action="store_true", help="write the table and plot into README.md/docs")
    parser.add_argument("--publish-only", action="store_true",
                        help="skip the run: write README.md/docs from the results.json already in --out")
    parser.add_argument("--no-progress", action="store_true")


class Stages:
    """Runs and times the stages; each stage's wall time lands in the results."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def run(self, name: str, func, *args, **kwargs):
        logger.info("== %s", name)
        start = time.perf_counter()
        result = func(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - start, 1)
        logger.info("== %s done in %.1fs", name, self.seconds[name])
        return result


def example(name: str, args: list) -> list[str]:
    """The command line of one of the repository's example scripts."""
    path = EXAMPLES / f"{name}.py"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the demo from a source checkout of hf-captioners")
    return [sys.executable, str(path), *map(str, args)]


def cli(args: list) -> list[str]:
    """The command line of an `hf-captioners` subcommand."""
    return [sys.executable, "-m", "hf_captioners.cli", *map(str, args)]


def _start(command: list[str], log: Path) -> tuple[subprocess.Popen, Path]:
    """Start one step of a lane in its own single-threaded process (as `accelerate launch` would)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 - closed when the process is reaped
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    handle.close()
    return process, log


def run_lanes(*lanes: list[tuple[list[str], Path]]) -> None:
    """Run lanes side by side (one core each), the scripts of a lane one after another.

    Two single-threaded processes use a 2-core machine far better than one two-threaded process, whose
    threads mostly wait on each other at these model sizes."""
    pending = [list(lane) for lane in lanes if lane]
    running = [(_start(*lane.pop(0)), lane) for lane in pending]
    failures = []
    while running:
        still = []
        for (process, log), lane in running:
            code = process.poll()
            if code is None:
                still.append(((process, log), lane))
            elif code != 0:
                failures.append(f"{log.stem} failed (exit {code}); log {log}:\n"
                                f"{log.read_text(encoding='utf-8', errors='replace')[-3000:]}")
            elif lane:
                still.append((_start(*lane.pop(0)), lane))
        running = still
        time.sleep(0.5)
    if failures:
        raise RuntimeError("\n".join(failures))


def _pretrain_one(name: str, tw: Path, out: Path, options: dict, seed: int) -> dict:
    import torch

    from . import backbones

    torch.set_num_threads(1)
    recipe = {"clip": backbones.pretrain_clip, "lm": backbones.pretrain_causal_lm}[name]
    return recipe(tw, out / name, seed=seed, progress=False, threads=1, **options)


def backbone_options(scale: Scale) -> dict:
    options = dict(scale.backbone_steps)
    if "steps" in options:
        options.update(limit=scale.backbone * 2, eval_limit=scale.eval)
    return options


def pretrain_backbones(tw: Path, out: Path, scale: Scale, seed: int) -> dict:
    """CLIP and the LM side by side, one process each. BART trains later, in the captioner lane that has
    time to spare (`train_captioners`): in this stage it would run after the LM and lengthen the stage."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .io_utils import atomic_write_json

    options = backbone_options(scale)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        clip = pool.submit(_pretrain_one, "clip", tw, out, options, seed)
        lm = pool.submit(_pretrain_one, "lm", tw, out, options, seed)
        metrics = {"clip": clip.result(), "lm": lm.result()}
    atomic_write_json(out / "metrics.json", metrics, indent=1)
    return metrics


def train_captioners(tw: Path, bb: Path, runs: Path, scale: Scale, seed: int) -> None:
    """Lane 1: Altogether PT then FT. Lane 2: ClipCap (FT without alt-text), BART pretraining, antarctic."""
    common = ["--batch_size", scale.batch_size, "--seed", seed, "--log_every", 50, "--warmup_steps", 20]
    pt = ["--stage", "pt", "--train_shards", str(tw / "shards" / "train-*.tar"), "--vision_model", bb / "clip",
          "--text_model", bb / "lm", *MAPPER, "--output_dir", runs / "altogether_pt", "--max_steps", scale.pt_steps,
          "--learning_rate", "1e-3", *common]
    ft = ["--stage", "ft", "--train_json", tw / "altogether_ft" / "train.json", "--image_root", tw / "images",
          "--precompute_image_embeds", "--num_epochs", scale.ft_epochs, "--learning_rate", "8e-4", *common]
    if scale.ft_max_steps:
        ft += ["--max_steps", scale.ft_max_steps]
    altogether = [*ft, "--resume", runs / "altogether_pt" / "final", "--output_dir", runs / "altogether"]
    clipcap = [*ft, "--no_alt_text", "--vision_model", bb / "clip", "--text_model", bb / "lm", *MAPPER,
               "--output_dir", runs / "clipcap"]
    antarctic = ["--train_json", tw / "coco" / "dataset_coco.json", "--split", "train", "--image_root", tw / "images",
                 "--clip_model", bb / "clip", "--bart_model", bb / "bart", "--num_unigrams", scale.cache_size,
                 "--num_bigrams", scale.cache_size, "--output_dir", runs / "antarctic", "--max_steps",
                 scale.antarctic_steps, "--batch_size", min(16, scale.batch_size), "--seed", seed, "--log_every", 50,
                 # a tiny BART tuned on a CPU budget needs a larger step than the original's 3e-4 over 6 epochs
                 "--learning_rate", "3e-3", "--warmup_steps", 100]
    bart = ["pretrain-backbones", "--toyworld", tw, "--out", bb, "--only", "bart", "--seed", seed, "--threads", 1,
            "--no-progress"]
    for name, value in backbone_options(scale).items():
        bart += [f"--{name.replace('_', '-')}"] + ([] if value is True else [value])
    run_lanes(
        [(example("train_altogether", pt), runs / "altogether_pt.log"),
         (example("train_altogether", altogether), runs / "altogether.log")],
        [(example("train_altogether", clipcap), runs / "clipcap.log"), (cli(bart), runs / "bart.log"),
         (example("train_antarctic", antarctic), runs / "antarctic.log")],
    )


# ---- toy-world measures of the papers' claims ----------------------------------------------------------

def _contains(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase)}\b", text.lower()) is not None


def errors_corrected(captions: list[str], table) -> dict:
    """Of the eval alt-texts that state a wrong colour/shape, the share whose caption states the object's
    true attributes and not the alt-text's wrong ones."""
    fixed = total = 0
    for caption, error_json, scene_json in zip(captions, table["alt_error"], table["scene"], strict=True):
        if not error_json:
            continue
        error, scene = json.loads(error_json), json.loads(scene_json)
        obj = scene["objects"][error["object"]]
        right = f"{obj['color']} {obj['shape']}"
        wrong_obj = dict(obj, **{error["field"]: error["wrong"]})
        wrong = f"{wrong_obj['color']} {wrong_obj['shape']}"
        wrong_is_true_elsewhere = any(f"{o['color']} {o['shape']}" == wrong for o in scene["objects"])
        total += 1
        fixed += _contains(caption or "", right) and (wrong_is_true_elsewhere or not _contains(caption or "", wrong))
    return {"errors_corrected": fixed / total if total else None, "errors_total": total}


def held_out_mentions(captions: list[str], table, concept: str) -> dict:
    """How often captions name the held-out concept on images that show it, and on images that do not."""
    shows = [any(concept in (o["color"], o["shape"]) for o in json.loads(s)["objects"]) for s in table["scene"]]
    hits = [_contains(c or "", concept) for c in captions]
    pos = [h for h, s in zip(hits, shows) if s]
    neg = [h for h, s in zip(hits, shows) if not s]
    return {"held_out_recall": sum(pos) / len(pos) if pos else None,
            "held_out_false_positive": sum(neg) / len(neg) if neg else None, "held_out_images": len(pos)}


SYSTEMS = (
    ("alt-text copied", "copy"),
    ("ClipCap (image only)", "clipcap"),
    ("Altogether (image + alt-text)", "altogether"),
    ("antarctic (beam)", "antarctic_beam"),
    ("antarctic (sample-N + CLIP re-rank)", "antarctic_sample"),
    ("antarctic (sample-N + re-rank) + custom cache entry", "antarctic_custom"),
)


def evaluate_systems(tw: Path, bb: Path, runs: Path, out: Path, scale: Scale, concept: str, progress: bool) -> dict:
    import torch
    from transformers import AutoProcessor, CLIPModel, pipeline

    from .evaluation import load_eval_set, run_evaluation
    from .toyworld import COLORS, SHAPES, load_hf_split

    examples = load_eval_set(toyworld=str(tw), split="eval", references="dense", limit=scale.eval)
    table = load_hf_split(tw, "eval").select(range(len(examples)))
    clip = (CLIPModel.from_pretrained(bb / "clip").eval(), AutoProcessor.from_pretrained(bb / "clip"))
    greedy = {"do_sample": False, "num_beams": 1, "max_new_tokens": 48}
    results = {}

    def record(key, metrics):
        captions = [json.loads(line)["caption"] for line in (out / "eval" / key / "captions.jsonl").read_text().splitlines()]
        metrics.update(errors_corrected(captions, table))
        metrics.update(held_out_mentions(captions, table, concept))
        results[key] = metrics

    record("copy", run_evaluation(examples, out / "eval" / "copy", baseline="alt_text", clip=clip, progress=progress))
    for key, use_alt in (("clipcap", False), ("altogether", True)):
        pipe = pipeline("image-to-text", model=str(runs / key / "final"), trust_remote_code=True)
        record(key, run_evaluation(examples, out / "eval" / key, pipe=pipe, batch_size=scale.batch_size,
                                   generate_kwargs=greedy, use_alt_text=use_alt, clip=clip, progress=progress))
    antarctic_dir = runs / "antarctic" / "final"
    pipe = pipeline("image-to-text", model=str(antarctic_dir), trust_remote_code=True)
    record("antarctic_beam", run_evaluation(examples, out / "eval" / "antarctic_beam", pipe=pipe, batch_size=scale.batch_size,
                                            use_alt_text=False, clip=clip, progress=progress))
    custom = pipe.model.cache.copy()
    phrases = [f"{concept} {shape}" for shape in SHAPES] if concept in COLORS else [f"{c} {concept}" for c in COLORS]
    custom.add([concept, *phrases], text_encoder=pipe.model.text_encoder(pipe.processor.clip_tokenizer))
    sample = {"do_sample": True, "top_p": 0.9, "temperature": 0.7}
    # the custom-cache row decodes exactly as the sample-N row (same settings, same seed): only the cache differs
    for key, cache in (("antarctic_sample", None), ("antarctic_custom", custom)):
        torch.manual_seed(0)
        record(key, run_evaluation(
            examples, out / "eval" / key, pipe=lambda images, cache=cache, **kw: pipe(
                images, num_candidates=scale.num_candidates, generate_kwargs=sample, batch_size=kw.get("batch_size"),
                cache=cache),
            batch_size=scale.batch_size, use_alt_text=False, clip=clip, progress=progress))
    return results


def recaption_eval_shards(tw: Path, runs: Path, out: Path, scale: Scale) -> dict:
    from .captioners import load_captioner
    from .recaption import caption_shards, expand_shard_specs

    captioner = load_captioner(str(runs / "altogether" / "final"), generate_kwargs={"do_sample": False, "max_new_tokens": 48})
    summary = caption_shards(captioner, expand_shard_specs(str(tw / "shards" / "eval-*.tar")), out / "recaption",
                             batch_size=scale.batch_size, num_workers=1, extra_formats=("jsonl",), progress=False)
    return {"line": summary.line(), "captioned": summary.captioned, "images_per_second": summary.images_per_second}


def reload_and_caption(tw: Path, runs: Path) -> list[dict]:
    """The trained folders through the public entry points only: AutoModel + both pipelines."""
    from PIL import Image
    from transformers import AutoModel, pipeline

    from .toyworld import load_hf_split

    rows = load_hf_split(tw, "eval").select(range(3))
    shown = []
    for key in ("altogether", "antarctic"):
        AutoModel.from_pretrained(runs / key / "final", trust_remote_code=True)
    to_text = pipeline("image-to-text", model=str(runs / "altogether" / "final"), trust_remote_code=True)
    itt = pipeline("image-text-to-text", model=str(runs / "altogether" / "final"), trust_remote_code=True)
    antarctic = pipeline("image-to-text", model=str(runs / "antarctic" / "final"), trust_remote_code=True)
    for row in rows:
        image: Image.Image = row["image"]
        shown.append({
            "alt_text": row["alt_text"],
            "altogether image-to-text": to_text(image, alt_text=row["alt_text"], do_sample=False, max_new_tokens=48)[0][
                "generated_text"],
            "altogether image-text-to-text": itt(images=image, text=row["alt_text"] or " ", max_new_tokens=48, return_full_text=False,
                                                 generate_kwargs={"do_sample": False})[0]["generated_text"],
            "antarctic image-to-text": antarctic(image)[0]["generated_text"],
            "reference": row["caption"],
        })
    return shown


# ---- reports ---------------------------------------------------------------------------------------------

def results_table(results: dict) -> str:
    def pct(value):
        return "–" if value is None else f"{value:.1%}"

    lines = ["| system | CIDEr-D | name retention | errors corrected | CLIPScore (0–2.5) | held-out concept named (shown / not shown) |",
             "|---|---|---|---|---|---|"]
    for label, key in SYSTEMS:
        m = results[key]
        lines.append(f"| {label} | {m['cider_d'] * 100:.1f} | {pct(m.get('name_retention'))} | {pct(m['errors_corrected'])} | "
                     f"{m.get('clip_score', 0.0):.3f} | {pct(m['held_out_recall'])} / {pct(m['held_out_false_positive'])} |")
    return "\n".join(lines)


def check_claims(results: dict) -> list[dict]:
    """The claims the demo exists to show, each decided from the measured rows by the rule in its text."""
    def cider(key):
        return results[key]["cider_d"] * 100

    def share(key, metric):
        return results[key].get(metric) or 0.0

    with_entry, without = share("antarctic_custom", "held_out_recall"), share("antarctic_sample", "held_out_recall")
    return [
        {"claim": "Altogether beats the copied alt-text on CIDEr-D by at least 10 points",
         "shown": cider("altogether") - cider("copy") >= 10, "evidence": f"{cider('altogether'):.1f} vs {cider('copy'):.1f}"},
        {"claim": "Altogether beats image-only ClipCap on CIDEr-D by at least 10 points",
         "shown": cider("altogether") - cider("clipcap") >= 10,
         "evidence": f"{cider('altogether'):.1f} vs {cider('clipcap'):.1f}"},
        {"claim": "Altogether keeps most names that only the alt-text has (over 50%)",
         "shown": share("altogether", "name_retention") > 0.5,
         "evidence": f"{share('altogether', 'name_retention'):.1%} (ClipCap {share('clipcap', 'name_retention'):.1%})"},
        {"claim": "Altogether corrects wrong alt-text attributes (at least 1 in 4)",
         "shown": share("altogether", "errors_corrected") >= 0.25,
         "evidence": f"{share('altogether', 'errors_corrected'):.1%} (copy {share('copy', 'errors_corrected'):.1%}, "
                     f"ClipCap {share('clipcap', 'errors_corrected'):.1%})"},
        {"claim": "antarctic names the held-out concept only when the cache has it (sample-N + CLIP re-ranking, same "
                  "seed: at least 50% of the images showing it with the custom entry, at most 5% without)",
         "shown": with_entry >= 0.5 and without <= 0.05,
         "evidence": f"{with_entry:.1%} with the entry vs {without:.1%} without "
                     f"(beam search without: {share('antarctic_beam', 'held_out_recall'):.1%})"},
    ]


def claims_text(claims: list[dict]) -> str:
    return "\n".join(f"- {'shown' if c['shown'] else '**not shown**'}: {c['claim']}: {c['evidence']}" for c in claims)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label.replace(" (", "\n(") for label, _ in SYSTEMS]
    keys = [key for _, key in SYSTEMS]
    panels = (("CIDEr-D", [results[k]["cider_d"] * 100 for k in keys]),
              ("name retention (%)", [100 * (results[k].get("name_retention") or 0) for k in keys]),
              ("alt-text errors corrected (%)", [100 * (results[k]["errors_corrected"] or 0) for k in keys]),
              ("held-out concept named on images\nthat show it (%)", [100 * (results[k]["held_out_recall"] or 0) for k in keys]))
    fig, axes = plt.subplots(1, len(panels), figsize=(20, 5.2))
    colors = ["#9e9e9e", "#64b5f6", "#1565c0", "#ffb74d", "#f57c00", "#e65100"]
    for ax, (title, values) in zip(axes, panels):
        ax.bar(range(len(values)), values, color=colors)
        ax.set_title(title)
        ax.set_xticks(range(len(values)), labels, rotation=60, ha="right", fontsize=8)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    fig.suptitle("toy-world reproduction (same eval images for every system)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def samples_html(tw: Path, out: Path, n: int = 12) -> None:
    import base64
    import html

    from .toyworld import load_hf_split

    table = load_hf_split(tw, "eval").cast_column("image", __import__("datasets").Image(decode=False))
    captions = {}
    for _, key in SYSTEMS:
        for line in (out / "eval" / key / "captions.jsonl").read_text().splitlines()[:n]:
            row = json.loads(line)
            captions.setdefault(row["key"], {})[key] = row["caption"]
    cells = []
    for row in table.select(range(min(n, len(table)))):
        image = base64.b64encode(row["image"]["bytes"]).decode()
        lines = "".join(f"<li><b>{html.escape(label)}</b>: {html.escape(captions.get(row['key'], {}).get(key) or '')}</li>"
                        for label, key in SYSTEMS[1:])
        cells.append(f"<div class=s><img src='data:image/jpeg;base64,{image}' width=128><div><p><b>alt-text</b>: "
                     f"{html.escape(row['alt_text'])}</p><p><b>reference</b>: {html.escape(row['caption'])}</p>"
                     f"<ul>{lines}</ul></div></div>")
    page = ("<!doctype html><meta charset=utf-8><title>hf-captioners toy-world samples</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:auto}.s{display:flex;gap:16px;margin:14px 0;"
            "border-bottom:1px solid #ddd;padding-bottom:10px}img{image-rendering:pixelated}</style>"
            "<h1>Toy-world samples</h1>" + "".join(cells))
    from .io_utils import atomic_write_text

    atomic_write_text(out / "samples.html", page)


def update_readme(readme: Path, table: str, plot_path: Path) -> None:
    from .io_utils import atomic_write_text

    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- demo-results:start -->", "<!-- demo-results:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} block to fill")
    block = f"{start}\n{table}\n\n![toy-world results]({plot_path.as_posix()})\n{end}"
    atomic_write_text(readme, re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S))


def publish(out: Path) -> None:
    """README's results block and docs/results.png from a finished run's results.json (never hand-typed)."""
    root = Path(__file__).resolve().parents[2]
    summary = json.loads((out / "results.json").read_text(encoding="utf-8"))
    plot(summary["systems"], root / "docs" / "results.png")
    header = (f"Measured by `make demo` ({summary['scale']} scale, {summary['seconds']:.0f}s on a 2-core CPU), every row on the "
              f"same {summary['systems']['copy']['n']} eval images. Held-out concept: `{summary['held_out_concept']}`, never in "
              f"the captioners' training captions; the custom-cache row adds it and `{summary['held_out_concept']} <shape>` "
              "entries to antarctic's cache at inference, with no retraining.")
    body = results_table(summary["systems"]) + "\n\n" + claims_text(check_claims(summary["systems"]))
    update_readme(root / "README.md", header + "\n\n" + body, Path("docs/results.png"))


def run(args: argparse.Namespace) -> int:
    from .io_utils import atomic_write_json, atomic_write_text
    from .toyworld import ToyWorldConfig, generate_toyworld

    if args.publish_only:
        publish(Path(args.out))
        print(f"demo: README.md and docs/results.png written from {args.out}/results.json")
        return 0
    started = time.perf_counter()
    scale_name = args.scale or ("fast" if args.fast else "full")
    scale = SCALES[scale_name]
    out = Path(args.out)
    tw, bb, runs = out / "toyworld", out / "backbones", out / "runs"
    config = ToyWorldConfig(seed=args.seed)
    concept = config.held_out[0]
    progress = not args.no_progress
    stages = Stages()
    world = stages.run("toy world", generate_toyworld, tw, splits={"train": scale.train, "eval": scale.eval,
                       "backbone": scale.backbone}, config=config, shard_size=max(scale.eval // 2, 8), progress=progress)
    backbones = stages.run("toy CLIP and LM", pretrain_backbones, tw, bb, scale, args.seed)
    stages.run("train Altogether (PT, FT), ClipCap, BART and antarctic", train_captioners, tw, bb, runs, scale, args.seed)
    backbones["bart"] = json.loads((bb / "bart" / "pretrain_metrics.json").read_text(encoding="utf-8"))
    results = stages.run("evaluate", evaluate_systems, tw, bb, runs, out, scale, concept, progress)
    recaption = stages.run("re-caption eval shards", recaption_eval_shards, tw, runs, out, scale)
    shown = stages.run("reload and caption through the pipelines", reload_and_caption, tw, runs)

    table = results_table(results)
    claims = check_claims(results)
    plot(results, out / "plot.png")
    samples_html(tw, out, n=min(12, scale.eval))
    summary = {
        "scale": scale_name, "seconds": round(time.perf_counter() - started, 1), "stage_seconds": stages.seconds,
        "toyworld": world["splits"], "backbones": backbones, "held_out_concept": concept,
        "systems": {key: {k: v for k, v in results[key].items() if k != "per_example"} for _, key in SYSTEMS},
        "claims": claims, "recaption": recaption, "pipeline_samples": shown,
    }
    atomic_write_json(out / "results.json", summary, indent=1)
    clip_r1 = backbones["clip"].get("recall_at_1", backbones["clip"].get("eval_recall_at_1"))
    report = [f"# Toy-world reproduction ({scale_name}, {summary['seconds']:.0f}s on {os.cpu_count()} CPUs)", "", table, "",
              claims_text(claims), "",
              f"Held-out concept: `{concept}` (absent from the captioners' training split and default cache).",
              f"Toy CLIP image->text R@1: {clip_r1}; LM perplexity: {backbones['lm'].get('eval_perplexity')}; "
              f"BART perplexity: {backbones['bart'].get('eval_perplexity')}, table copy rate: "
              f"{backbones['bart'].get('table_copy_rate')}.",
              f"Re-captioning the eval shards: {recaption['line']}", "", "Stage times (s): " + json.dumps(stages.seconds)]
    atomic_write_text(out / "results.md", "\n".join(report) + "\n")
    if args.update_readme:
        publish(out)

    print(table)
    print()
    print(claims_text(claims))
    print()
    for sample in shown:
        print(json.dumps(sample, ensure_ascii=False))
    print(f"demo: {scale_name} run in {summary['seconds']:.0f}s; Altogether CIDEr-D {results['altogether']['cider_d'] * 100:.1f} "
          f"vs copy {results['copy']['cider_d'] * 100:.1f} vs ClipCap {results['clipcap']['cider_d'] * 100:.1f}; "
          f"claims shown {sum(c['shown'] for c in claims)}/{len(claims)}; "
          f"results in {out}/results.md, plot.png, samples.html")
    return 0
