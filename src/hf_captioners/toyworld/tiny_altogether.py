"""Tiny, download-free Altogether builds for tests, examples and CI (not part of the saved remote code).

A byte-level BPE tokenizer trained in memory on toy-world texts, a tiny CLIP vision tower and a tiny
causal LM (GPT-2 or OPT), assembled through the same `from_backbones` path as real checkpoints.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    GPT2Config,
    OPTConfig,
    PreTrainedTokenizerFast,
)

from hf_captioners.altogether import register_auto_classes
from hf_captioners.altogether.modeling_altogether import AltogetherForConditionalGeneration
from hf_captioners.altogether.processing_altogether import AltogetherProcessor

__all__ = ["tiny_altogether", "tiny_text_config", "tiny_tokenizer", "tiny_vision_config", "toy_texts"]


def toy_texts(n: int = 200, seed: int = 0) -> list[str]:
    """Alt-texts and captions of the first `n` toy-world training examples."""
    from hf_captioners.toyworld import ToyWorldConfig, generate_example

    cfg = ToyWorldConfig(seed=seed, image_size=16)
    texts = []
    for i in range(n):
        example = generate_example(cfg, "train", i)
        texts += [t for _, t in example.alt_texts] + [example.caption, *example.captions]
    return texts


def tiny_tokenizer(vocab_size: int = 400, texts: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Byte-level BPE with `<pad>`, `</s>` and `<unk>`, left padding set at construction (so it is saved)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts if texts is not None else toy_texts(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", padding_side="left"
    )


def tiny_vision_config(image_size: int = 32, hidden: int = 32, projection_dim: int = 24) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        projection_dim=projection_dim,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=8,
    )


def tiny_text_config(kind: str, vocab_size: int, pad_token_id: int, eos_token_id: int, hidden: int = 32):
    if kind == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size, n_embd=hidden, n_layer=2, n_head=2, n_positions=512,
            bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
        )  # fmt: skip
    if kind == "opt":
        return OPTConfig(
            vocab_size=vocab_size, hidden_size=hidden, ffn_dim=2 * hidden, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=512, word_embed_proj_dim=hidden,
            pad_token_id=pad_token_id, bos_token_id=eos_token_id, eos_token_id=eos_token_id,
        )  # fmt: skip
    raise ValueError(f"unknown tiny text model kind {kind!r} (gpt2 | opt)")


def tiny_altogether(
    text_kind: str = "opt",
    tokenizer: PreTrainedTokenizerFast | None = None,
    image_size: int = 32,
    seed: int = 0,
    **config_kwargs,
) -> tuple[AltogetherForConditionalGeneration, AltogetherProcessor]:
    """(model, processor) with random weights; `config_kwargs` go to AltogetherConfig (mapper options,
    prefix_length, prompt_length ...). Defaults: 4 prefix tokens, 16 prompt tokens, 1-layer mapper."""
    register_auto_classes()
    config_kwargs = {
        "prefix_length": 4, "clip_length": 4, "prompt_length": 16,
        "mapper_num_layers": 1, "mapper_num_heads": 2, **config_kwargs,
    }  # fmt: skip
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    processor = AltogetherProcessor.from_backbones(
        image_size,
        tokenizer,
        prefix_length=config_kwargs.pop("prefix_length"),
        prompt_length=config_kwargs.pop("prompt_length"),
        max_length=config_kwargs.pop("max_length", 320),
    )
    torch.manual_seed(seed)
    vision = CLIPVisionModelWithProjection(tiny_vision_config(image_size))
    text = AutoModelForCausalLM.from_config(
        tiny_text_config(text_kind, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    )
    model = AltogetherForConditionalGeneration.from_backbones(vision, text, processor=processor, **config_kwargs)
    return model.eval(), processor
