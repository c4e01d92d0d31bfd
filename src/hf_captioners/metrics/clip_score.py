"""CLIPScore and RefCLIPScore (Hessel et al., EMNLP 2021) with any transformers CLIP model and processor.

CLIP-S(c, v) = w * max(cos(E_c, E_v), 0) with w = 2.5 (the paper's rescaling, so scores land around 0-1).
RefCLIP-S(c, R, v) = harmonic mean of CLIP-S(c, v) and max(max_r cos(E_c, E_r), 0).
The paper uses ViT-B/32 and the prompt "A photo depicts"; scores from other CLIPs are only comparable with
each other, so the model's name is part of what a results file records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

logger = logging.getLogger(__name__)

__all__ = ["clip_scores"]


def _features(output):
    """transformers v5 returns a ModelOutput (pooler_output = projected embedding); older versions a tensor."""
    return output if hasattr(output, "norm") else output.pooler_output


def clip_scores(
    images: Sequence,
    captions: Sequence[str],
    model,
    processor,
    references: Sequence[Sequence[str]] | None = None,
    batch_size: int = 64,
    w: float = 2.5,
    prompt: str = "A photo depicts ",
    device=None,
    progress: bool = False,
) -> dict:
    """Per-example and mean CLIP-S (and RefCLIP-S when `references` are given).

    `model` has `get_image_features` / `get_text_features` (e.g. `CLIPModel`); `processor` turns
    `images=` into pixel_values and `text=` into input ids (e.g. `CLIPProcessor`). Texts are truncated to the
    model's maximum length.
    """
    import torch
    from tqdm.auto import tqdm

    from ..altogether.image_utils import load_rgb_image

    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} images but {len(captions)} captions")
    if references is not None and len(references) != len(captions):
        raise ValueError(f"got {len(captions)} captions but {len(references)} reference lists")
    device = device or next(model.parameters()).device
    model.eval()

    @torch.inference_mode()
    def embed_text(texts):
        out = []
        for i in range(0, len(texts), batch_size):
            batch = processor(text=list(texts[i:i + batch_size]), padding=True, truncation=True, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
            out.append(torch.nn.functional.normalize(_features(model.get_text_features(**batch)).float(), dim=-1))
        return torch.cat(out) if out else torch.zeros(0)

    @torch.inference_mode()
    def embed_images(items):
        out = []
        for i in tqdm(range(0, len(items), batch_size), desc="CLIP images", disable=not progress):
            pixels = processor(images=[load_rgb_image(x) for x in items[i:i + batch_size]], return_tensors="pt")
            pixels = pixels["pixel_values"].to(device=device, dtype=next(model.parameters()).dtype)
            out.append(torch.nn.functional.normalize(_features(model.get_image_features(pixel_values=pixels)).float(), dim=-1))
        return torch.cat(out) if out else torch.zeros(0)

    if not captions:
        return {"clip_score": 0.0, "clip_scores": [], **({"ref_clip_score": 0.0, "ref_clip_scores": []} if references is not None else {})}
    image_emb = embed_images(list(images))
    caption_emb = embed_text([prompt + c for c in captions])
    clip_s = w * (image_emb * caption_emb).sum(-1).clamp(min=0)
    result = {"clip_score": clip_s.mean().item(), "clip_scores": clip_s.tolist()}
    if references is not None:
        flat = [r for refs in references for r in refs]
        owner = torch.tensor([i for i, refs in enumerate(references) for _ in refs], dtype=torch.long)
        ref_emb = embed_text([prompt + r for r in flat])
        cos = (ref_emb * caption_emb[owner]).sum(-1)
        best = torch.full((len(captions),), float("-inf")).scatter_reduce(0, owner, cos, reduce="amax")
        best = best.clamp(min=0)
        denom = clip_s + best
        ref_s = torch.where(denom > 0, 2 * clip_s * best / denom.clamp(min=1e-12), torch.zeros_like(denom))
        result.update(ref_clip_score=ref_s.mean().item(), ref_clip_scores=ref_s.tolist())
    return result
