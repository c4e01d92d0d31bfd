"""Captions -> little stories: the caption becomes the prompt of any causal LM, as antarctic-captions did."""

from __future__ import annotations

import logging

__all__ = ["DEFAULT_PROMPT_TEMPLATE", "tell_stories", "tell_story"]

logger = logging.getLogger(__name__)

DEFAULT_PROMPT_TEMPLATE = "Once upon a time there was {caption}"


def _prompt(caption: str, template: str) -> str:
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"tell_story: empty caption {caption!r}")
    if "{caption}" not in template:
        raise ValueError(f"tell_story: prompt_template must contain '{{caption}}', got {template!r}")
    return template.format(caption=caption.strip())


def tell_stories(captions: list[str], model, tokenizer, prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
                 **generate_kwargs) -> list[str]:
    """One story per caption, generated in one left-padded batch; each story starts with its prompt."""
    import torch

    prompts = [_prompt(c, prompt_template) for c in captions]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    finally:
        tokenizer.padding_side = side
    generate_kwargs.setdefault("max_new_tokens", 60)
    generate_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
    with torch.no_grad():
        output = model.generate(**inputs, **generate_kwargs)
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    continuations = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [prompt + continuation for prompt, continuation in zip(prompts, continuations)]


def tell_story(caption: str, model, tokenizer, prompt_template: str = DEFAULT_PROMPT_TEMPLATE, **generate_kwargs) -> str:
    """`Once upon a time there was {caption}` continued by `model` (any `AutoModelForCausalLM`)."""
    return tell_stories([caption], model, tokenizer, prompt_template, **generate_kwargs)[0]
