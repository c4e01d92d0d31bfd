"""Tiny antarctic-captions models on toy-world text, for tests, benchmarks and the CPU demo (no downloads).

Tokenizers are byte-level BPEs trained here with `tokenizers` (through transformers' `train_new_from_iterator`)
on toy captions and tables, so their special-token ids differ from the real ones: configs take ids from them.
"""

from __future__ import annotations

import torch
from transformers import BartConfig, BartTokenizer, CLIPConfig, CLIPTokenizer

from hf_captioners.antarctic import AntarcticConfig, AntarcticForConditionalGeneration, AntarcticProcessor

__all__ = ["tiny_antarctic", "tiny_config", "tiny_processor", "tiny_tokenizers", "toy_texts"]

EXTRA_TEXTS = ("geoff hinton | a man | a person | ", "the quick brown fox, 1 2 3 4 5 6 7 8 9 0 ! ? . ; :")


def toy_texts(count: int = 120, seed: int = 0) -> list[str]:
    """COCO-style captions of `count` toy-world training images."""
    from hf_captioners.toyworld import ToyWorldConfig, generate_example

    config = ToyWorldConfig(seed=seed)
    return [c for i in range(count) for c in generate_example(config, "train", i).captions]


def tiny_tokenizers(texts: list[str], clip_vocab: int = 400, bart_vocab: int = 400):
    corpus = list(texts) + [" | ".join(texts[i : i + 4]) + " | " for i in range(0, len(texts), 4)] + list(EXTRA_TEXTS)
    clip = CLIPTokenizer().train_new_from_iterator(corpus, vocab_size=clip_vocab)
    bart = BartTokenizer().train_new_from_iterator(corpus, vocab_size=bart_vocab)
    return clip, bart


def tiny_processor(clip_tokenizer, bart_tokenizer, image_size: int = 32) -> AntarcticProcessor:
    from hf_captioners.convert.open_clip_to_hf import openai_clip_image_processor

    return AntarcticProcessor(openai_clip_image_processor(image_size), bart_tokenizer, clip_tokenizer)


def tiny_config(clip_tokenizer, bart_tokenizer, image_size: int = 32, hidden: int = 32, projection: int = 16,
                **kwargs) -> AntarcticConfig:
    clip = CLIPConfig(
        text_config=dict(vocab_size=len(clip_tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                         bos_token_id=clip_tokenizer.bos_token_id, eos_token_id=clip_tokenizer.eos_token_id,
                         pad_token_id=clip_tokenizer.pad_token_id),
        vision_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                           num_attention_heads=2, image_size=image_size, patch_size=8),
        projection_dim=projection,
    )
    bart = BartConfig(
        vocab_size=len(bart_tokenizer), d_model=hidden, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * hidden,
        decoder_ffn_dim=2 * hidden, max_position_embeddings=160, dropout=0.0,
        pad_token_id=bart_tokenizer.pad_token_id, bos_token_id=bart_tokenizer.bos_token_id,
        eos_token_id=bart_tokenizer.eos_token_id, decoder_start_token_id=bart_tokenizer.eos_token_id,
        forced_eos_token_id=bart_tokenizer.eos_token_id,
    )
    return AntarcticConfig(clip_config=clip, bart_config=bart, **kwargs)


def tiny_antarctic(texts: list[str] | None = None, seed: int = 0, **config_kwargs):
    """(model, processor, texts): a random tiny captioner with its processor; no cache attached."""
    texts = texts or toy_texts()
    clip_tok, bart_tok = tiny_tokenizers(texts)
    torch.manual_seed(seed)
    model = AntarcticForConditionalGeneration(tiny_config(clip_tok, bart_tok, **config_kwargs)).eval()
    return model, tiny_processor(clip_tok, bart_tok), texts
