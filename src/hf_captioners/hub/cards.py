"""Model cards for pushed checkpoints, rendered from the repository's `model_cards/` templates with real numbers.

The YAML front matter is built with `huggingface_hub.ModelCardData` (so it is what the Hub expects:
`library_name`, `pipeline_tag`, license, datasets, metrics, base models, `model-index` eval results) and the
body comes from `altogether.md` / `antarctic.md` through `ModelCard.from_template` (jinja2). Sizes come from
the checkpoint's config.json and safetensors headers, scores from the evaluation runner's results.json.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from hf_captioners.registry import spec_for

__all__ = ["count_parameters", "load_results", "render_model_card", "template_path"]


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
    """The top-level `model_cards/<template>.md`, installed as the data package `hf_captioners.model_cards`."""
    return Path(str(resources.files("hf_captioners.model_cards") / spec_for(model_type).card_template))


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
    spec = spec_for(model_type)
    variant = spec.variant_of(config)
    defaults = asdict(spec.card_facts(config))
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
        variant=variant,
        title=fields["title"],
        repo_id=repo_id,
        results=results,
        result_rows=rows,
        eval_dataset_name=eval_dataset_name,
        generate_kwargs=json.dumps(run["generate_kwargs"], sort_keys=True) if run.get("generate_kwargs") else None,
        num_parameters=_human(num_parameters) if num_parameters else "n/a",
        generation_summary=_generation_summary(generation or {}),
        cache_size=f"{cache_size:,}" if cache_size is not None else "a",
        training_recipe=fields["training_recipe"],
        **spec.card_fields(config),
    )
    return str(card)
