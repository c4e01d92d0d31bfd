"""Model cards for pushed checkpoints, rendered from the templates beside this file with real numbers.

The YAML front matter is built with `huggingface_hub.ModelCardData` (so it is what the Hub expects:
`library_name`, `pipeline_tag`, license, datasets, metrics, base models, `model-index` eval results) and the
body comes from `altogether.md` / `antarctic.md` through `ModelCard.from_template` (jinja2). Sizes come from
the checkpoint's config.json and safetensors headers, scores from the evaluation runner's results.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["CARD_DEFAULTS", "count_parameters", "load_results", "render_model_card", "template_path"]

_HERE = Path(__file__).resolve().parent

ALTOGETHER_RECIPE = """The paper's recipe, which `examples/train_altogether.py` reproduces:

- **Frozen**: the CLIP tower (never saved in the original's checkpoints). **Trained**: mapper and decoder.
- **Stage PT** (alt-text pre-training, 1 epoch): webdataset shards of images with their alt-texts; the
  target is the longest deduplicated alt-text, the prompt another alt-text (or none), prompt dropped 50% of
  the time; Resize(224) + CenterCrop.
- **Stage FT** (2 epochs): Altogether-FT (15,448 human re-aligned captions, the alt-text as prompt, 50%
  prompt dropout; images squashed to 224x224).
- Sequence: `[prefix][alt-text, 128 tokens, left-padded][caption </s>]`, max 320 tokens; loss on the
  caption and `</s>` only.
- AdamW, lr 2e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0.2 (none on biases and norms), 200 warmup
  steps, cosine decay, fp16, batch 32 x 16 GPUs. FT gets its own schedule here: in the original one cosine
  spanned both stages and had decayed to ~1e-9 by FT."""

ANTARCTIC_RECIPE = """The original's recipe:

- **Frozen**: CLIP and BART, except the 73,728 LayerNorm parameters (on bart-large) whose names contain
  both `encoder` and `layer_norm`: the encoder's self-attention and final LayerNorms and the decoder's
  encoder-attention LayerNorms (PEFT `LNTuningConfig`; merged before upload).
- **Data**: COCO captions; for each image the table is its top-10 cache entries by CLIP cosine, the
  target one of its captions. BART encoder max 128 tokens, decoder 32.
- **Cache**: COCO train2017 captions, `nltk.wordpunct_tokenize`, lower-cased; the 25,000 most frequent
  unigrams + 25,000 bigrams by PMI (frequency >= 3), each embedded with CLIP's text encoder, L2-normalised.
- AdamW, lr 3e-4, batch 16, about 6 epochs."""

# model_type -> card defaults; every field can be overridden per push
CARD_DEFAULTS = {
    "altogether": {
        "license": "cc-by-nc-4.0",
        "datasets": ["activebus/Altogether-FT"],
        "base_model": ["facebook/metaclip-h14-fullcc2.5b", "facebook/opt-1.3b"],
        "tags": ["image-captioning", "alt-text", "altogether", "clipcap", "custom_code"],
        "training_recipe": ALTOGETHER_RECIPE,
    },
    "antarctic": {
        "license": "mit",
        "datasets": ["coco"],
        "base_model": ["openai/clip-vit-base-patch16", "facebook/bart-large"],
        "tags": ["image-captioning", "antarctic-captions", "retrieval", "custom_code"],
        "training_recipe": ANTARCTIC_RECIPE,
    },
}

# (label, results key, scale, format): CIDEr-D x100 as papers report it; BLEU/ROUGE already 0-100
_ROWS = [
    ("CIDEr-D", "cider_d", 100.0, "{:.2f}"),
    ("BLEU-4", "bleu_4", 1.0, "{:.2f}"),
    ("ROUGE-L", "rouge_l", 1.0, "{:.2f}"),
    ("CLIPScore", "clip_score", 1.0, "{:.4f}"),
    ("RefCLIPScore", "ref_clip_score", 1.0, "{:.4f}"),
    ("alt-text retention", "retention", 100.0, "{:.1f}%"),
    ("name retention", "name_retention", 100.0, "{:.1f}%"),
]
_INDEX_METRICS = {"cider_d": ("cider", "CIDEr-D"), "bleu_4": ("bleu", "BLEU-4"), "rouge_l": ("rouge", "ROUGE-L")}


def template_path(model_type: str) -> Path:
    path = _HERE / f"{model_type}.md"
    if not path.is_file():
        raise ValueError(f"no model card template for model_type {model_type!r} (have: altogether, antarctic)")
    return path


def load_results(results) -> dict | None:
    """A results dict, or the path of the evaluation runner's results.json (or of its folder)."""
    if results is None or isinstance(results, dict):
        return results
    path = Path(results)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable results JSON ({error})") from error
    if not isinstance(data, dict) or "cider_d" not in data or "n" not in data:
        raise ValueError(f"{path}: not a results.json of `hf-captioners evaluate` (no 'cider_d' / 'n')")
    return data


def count_parameters(folder: str | os.PathLike) -> int:
    """Values stored in the folder's safetensors files, read from their headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                n = 1
                for dim in handle.get_slice(name).get_shape():
                    n *= dim
                total += n
    return total


def _human(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit} ({n:,})"
    return f"{n:,}"


def _generation_summary(generation: dict) -> str:
    keys = ("do_sample", "temperature", "top_p", "top_k", "num_beams", "num_return_sequences", "max_new_tokens", "max_length")
    return ", ".join(f"`{k}={generation[k]}`" for k in keys if generation.get(k) is not None) or "transformers' defaults"


def _architecture(model_type: str, config: dict) -> dict:
    if model_type == "altogether":
        vision, text = config["vision_config"], config["text_config"]
        mapper = (
            f"ClipCap transformer: {config['clip_length']} tokens from the embedding + {config['prefix_length']} learned "
            f"constants, {config['mapper_num_layers']} pre-LN layers, {config['mapper_num_heads']} heads"
            if config["mapper_type"] == "transformer"
            else f"ClipCap MLP (Linear-Tanh-Linear) to {config['prefix_length']} tokens"
        )
        return {
            "mapper_type": config["mapper_type"], "mapper_description": mapper,
            "prefix_length": config["prefix_length"], "prompt_length": config["prompt_length"],
            "normalize": config.get("normalize_image_embeds", True), "projection_dim": vision["projection_dim"],
            "text_model_type": text.get("model_type"), "text_width": text.get("hidden_size") or text.get("n_embd"),
            "text_layers": text.get("num_hidden_layers") or text.get("n_layer"), "vocab_size": text.get("vocab_size"),
            **_vision(vision),
        }  # fmt: skip
    clip, bart = config["clip_config"], config["bart_config"]
    return {
        "projection_dim": clip["projection_dim"], "table_top_k": config["table_top_k"],
        "bart_layers": bart["encoder_layers"], "bart_layers_dec": bart["decoder_layers"], "bart_width": bart["d_model"],
        **_vision(clip["vision_config"]),
    }  # fmt: skip


def _vision(vision: dict) -> dict:
    return {"vision_layers": vision["num_hidden_layers"], "vision_width": vision["hidden_size"],
            "patch_size": vision["patch_size"], "image_size": vision["image_size"],
            "vision_act": vision.get("hidden_act", "quick_gelu")}  # fmt: skip


def render_model_card(
    config: dict,
    repo_id: str,
    results=None,
    num_parameters: int | None = None,
    generation: dict | None = None,
    cache_size: int | None = None,
    model_name: str | None = None,
    eval_dataset_name: str = "the evaluation set",
    eval_dataset_id: str | None = None,
    **overrides,
) -> str:
    """README.md text for a checkpoint with `config` (config.json as a dict). `overrides`: license, datasets,
    base_model, tags, training_recipe, language."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    model_type = config.get("model_type")
    defaults = dict(CARD_DEFAULTS.get(model_type) or {})
    template = template_path(model_type)
    unknown = set(overrides) - set(defaults) - {"language"}
    if unknown:
        raise TypeError(f"render_model_card: unknown card fields {sorted(unknown)}")
    fields = {**defaults, **{k: v for k, v in overrides.items() if v is not None}}
    results = load_results(results)
    model_name = model_name or repo_id.split("/")[-1]

    eval_results = None
    rows = []
    if results:
        dataset_id = eval_dataset_id or eval_dataset_name
        eval_results = [
            EvalResult(task_type="image-to-text", dataset_type=dataset_id, dataset_name=eval_dataset_name,
                       metric_type=metric, metric_name=label, metric_value=round(results[key] * (100.0 if key == "cider_d" else 1.0), 4))
            for key, (metric, label) in _INDEX_METRICS.items() if results.get(key) is not None
        ]  # fmt: skip
        rows = [(label, fmt.format(results[key] * scale)) for label, key, scale, fmt in _ROWS if results.get(key) is not None]
        rows.append(("words / caption", f"{results['lengths']['mean']:.1f}" if results.get("lengths") else "n/a"))
    card_data = ModelCardData(
        language=fields.get("language", "en"),
        license=fields["license"],
        library_name="transformers",
        pipeline_tag="image-to-text",
        tags=list(fields["tags"]),
        datasets=list(fields["datasets"]),
        metrics=["cider", "bleu", "rouge"],
        base_model=list(fields["base_model"]),
        model_name=model_name,
        eval_results=eval_results,
    )
    run = (results or {}).get("run") or {}
    card = ModelCard.from_template(
        card_data,
        template_path=str(template),
        model_name=model_name,
        repo_id=repo_id,
        results=results,
        result_rows=rows,
        eval_dataset_name=eval_dataset_name,
        generate_kwargs=json.dumps(run["generate_kwargs"], sort_keys=True) if run.get("generate_kwargs") else None,
        num_parameters=_human(num_parameters) if num_parameters else "n/a",
        generation_summary=_generation_summary(generation or {}),
        cache_size=f"{cache_size:,}" if cache_size is not None else "a",
        training_recipe=fields["training_recipe"],
        **_architecture(model_type, config),
    )
    return str(card)
