"""What each captioner needs outside its model folder, in one place.

A model folder (`altogether/`, `antarctic/`) is self-contained remote code; everything else that depends on
the model type — which files a Hub checkpoint carries, the re-captioning adapter, the card template and the
card's facts per variant — is one `CaptionerSpec` here. Adding a third captioner means a folder, a template
in `model_cards/` and one entry in `CAPTIONERS`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CAPTIONERS", "CaptionerSpec", "CardFacts", "model_pipeline", "spec_for"]


@dataclass(frozen=True)
class CardFacts:
    """The model card's facts for one variant; every field can be overridden per push."""

    license: str
    datasets: tuple[str, ...]
    base_model: tuple[str, ...]
    tags: tuple[str, ...]
    training_recipe: str
    title: str


@dataclass(frozen=True)
class CaptionerSpec:
    model_type: str
    package: str
    remote_code: tuple[str, ...]
    adapter: str
    pipeline: str
    card_template: str
    cards: dict[str, CardFacts] = field(default_factory=dict)
    card_fields: Callable[[dict], dict] = dict
    variant_of: Callable[[dict], str] = lambda config: "default"

    @property
    def folder(self) -> Path:
        return Path(importlib.import_module(self.package).__file__).resolve().parent

    def adapter_class(self):
        module, name = self.adapter.split(":")
        return getattr(importlib.import_module(module), name)

    def card_facts(self, config: dict) -> CardFacts:
        return self.cards[self.variant_of(config)]


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

CLIPCAP_RECIPE = """ClipCap's recipe (rmokady/CLIP_prefix_caption `train.py`), which `examples/train_altogether.py`
follows with `--prompt_length 0`:

- **Frozen**: CLIP (its image embeddings are precomputed). **Trained**: the mapper, and GPT-2 with the MLP
  mapper; the transformer mapper leaves GPT-2 frozen (`--only_prefix`).
- **Data**: COCO captions (Karpathy split) or Conceptual Captions; no alt-text: the sequence is
  `[prefix][caption]`, loss on the caption tokens only.
- AdamW, lr 2e-5, 5,000 warmup steps then linear decay, batch 40, 10 epochs."""

ANTARCTIC_RECIPE = """The original's recipe:

- **Frozen**: CLIP and BART, except the 73,728 LayerNorm parameters (on bart-large) whose names contain
  both `encoder` and `layer_norm`: the encoder's self-attention and final LayerNorms and the decoder's
  encoder-attention LayerNorms (PEFT `LNTuningConfig`; merged before upload).
- **Data**: COCO captions; for each image the table is its top-10 cache entries by CLIP cosine, the
  target one of its captions. BART encoder max 128 tokens, decoder 32.
- **Cache**: COCO train2017 captions, `nltk.wordpunct_tokenize`, lower-cased; the 25,000 most frequent
  unigrams + 25,000 bigrams by PMI (frequency >= 3), each embedded with CLIP's text encoder, L2-normalised.
- AdamW, lr 3e-4, batch 16, about 6 epochs."""


def _altogether_variant(config: dict) -> str:
    """`prompt_length=0` is plain ClipCap: no alt-text, ClipCap's licence, data and recipe."""
    return "altogether" if config.get("prompt_length", 0) > 0 else "clipcap"


def _vision_card_fields(vision: dict) -> dict:
    return {"vision_layers": vision["num_hidden_layers"], "vision_width": vision["hidden_size"],
            "patch_size": vision["patch_size"], "image_size": vision["image_size"],
            "vision_act": vision.get("hidden_act", "quick_gelu")}  # fmt: skip


def _altogether_card_fields(config: dict) -> dict:
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
        **_vision_card_fields(vision),
    }  # fmt: skip


def _antarctic_card_fields(config: dict) -> dict:
    clip, bart = config["clip_config"], config["bart_config"]
    return {
        "projection_dim": clip["projection_dim"], "table_top_k": config["table_top_k"],
        "bart_layers": bart["encoder_layers"], "bart_layers_dec": bart["decoder_layers"], "bart_width": bart["d_model"],
        **_vision_card_fields(clip["vision_config"]),
    }  # fmt: skip


CAPTIONERS: dict[str, CaptionerSpec] = {
    "altogether": CaptionerSpec(
        model_type="altogether",
        package="hf_captioners.altogether",
        remote_code=("configuration_altogether.py", "modeling_altogether.py", "processing_altogether.py",
                     "image_processing_altogether.py", "pipeline_altogether.py", "image_utils.py"),
        adapter="hf_captioners.recaption.adapters:AltogetherShardCaptioner",
        pipeline="AltogetherImageToTextPipeline",
        card_template="altogether.md",
        cards={
            "altogether": CardFacts(
                title="Altogether", license="cc-by-nc-4.0", datasets=("activebus/Altogether-FT",),
                base_model=("facebook/metaclip-h14-fullcc2.5b", "facebook/opt-1.3b"),
                tags=("image-captioning", "alt-text", "altogether", "clipcap", "custom_code"),
                training_recipe=ALTOGETHER_RECIPE),
            "clipcap": CardFacts(
                title="ClipCap", license="mit", datasets=("coco",),
                base_model=("openai/clip-vit-base-patch32", "openai-community/gpt2"),
                tags=("image-captioning", "clipcap", "custom_code"), training_recipe=CLIPCAP_RECIPE),
        },
        card_fields=_altogether_card_fields,
        variant_of=_altogether_variant,
    ),
    "antarctic": CaptionerSpec(
        model_type="antarctic",
        package="hf_captioners.antarctic",
        remote_code=("configuration_antarctic.py", "modeling_antarctic.py", "processing_antarctic.py",
                     "image_processing_antarctic.py", "pipeline_antarctic.py", "retrieval_antarctic.py",
                     "image_utils.py"),
        adapter="hf_captioners.recaption.adapters:AntarcticShardCaptioner",
        pipeline="AntarcticCaptionPipeline",
        card_template="antarctic.md",
        cards={
            "default": CardFacts(
                title="antarctic-captions", license="mit", datasets=("coco",),
                base_model=("openai/clip-vit-base-patch16", "facebook/bart-large"),
                tags=("image-captioning", "antarctic-captions", "retrieval", "custom_code"),
                training_recipe=ANTARCTIC_RECIPE),
        },
        card_fields=_antarctic_card_fields,
    ),
}  # fmt: skip


def spec_for(model_type: str | None) -> CaptionerSpec:
    if model_type not in CAPTIONERS:
        raise ValueError(f"unsupported model_type {model_type!r} (supported: {', '.join(CAPTIONERS)})")
    return CAPTIONERS[model_type]


def model_pipeline(model, processor, **kwargs):
    """The model's own image-to-text pipeline around an in-memory model. The class is taken from the module that
    defined the model (its modeling file imports the pipeline file), so remote code gets its own copy."""
    spec = spec_for(model.config.model_type)
    return getattr(sys.modules[type(model).__module__], spec.pipeline)(model=model, processor=processor, **kwargs)
