"""open_clip -> transformers CLIP: embeddings equal open_clip's on tiny models (quickgelu and gelu), real
configs (MetaCLIP ViT-H/14-quickgelu, OpenAI ViT-B/16) with matching parameter counts on the meta device,
unsupported options refused, and the checkpoint-file path with weights-only loading."""

from __future__ import annotations

import os

import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from hf_captioners.convert.checkpoints import CheckpointError, load_checkpoint  # noqa: E402
from hf_captioners.convert.open_clip_to_hf import (  # noqa: E402
    clip_config_from_open_clip,
    convert_open_clip,
    open_clip_config_from_state_dict,
    open_clip_model_config,
    open_clip_to_hf,
)

VOCAB, CONTEXT = 100, 12


def tiny_cfg(quick_gelu: bool, head_width: int = 16) -> dict:
    return {
        "embed_dim": 16,
        "quick_gelu": quick_gelu,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": head_width, "patch_size": 8},
        "text_cfg": {"context_length": CONTEXT, "vocab_size": VOCAB, "width": 32, "heads": 2, "layers": 2},
    }


def build_open_clip(cfg: dict, seed: int = 0):
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"], quick_gelu=cfg["quick_gelu"])
    with torch.no_grad():
        for p in model.parameters():  # larger than the default init so activations differ between gelu variants
            p.normal_(0, 0.2)
        model.logit_scale.fill_(3.1)
    return model.eval()


def texts():
    ids = torch.randint(1, VOCAB - 2, (3, CONTEXT), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = VOCAB - 2  # <start_of_text>
    ids[0, 4], ids[0, 5:] = VOCAB - 1, 0
    ids[1, CONTEXT - 1] = VOCAB - 1
    ids[2, 7], ids[2, 8:] = VOCAB - 1, 0
    mask = torch.ones_like(ids)
    mask[0, 5:] = mask[2, 8:] = 0
    return ids, mask


def pooled(output):
    return output.pooler_output if hasattr(output, "pooler_output") else output


@pytest.mark.parametrize("quick_gelu", [True, False], ids=["quickgelu", "gelu"])
def test_embeddings_equal_open_clip(quick_gelu):
    cfg = tiny_cfg(quick_gelu)
    reference = build_open_clip(cfg)
    hf = open_clip_to_hf(reference, cfg)
    assert hf.config.vision_config.hidden_act == ("quick_gelu" if quick_gelu else "gelu")
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    ids, mask = texts()
    with torch.no_grad():
        image_ref, text_ref = reference.encode_image(pixels), reference.encode_text(ids)
        image = pooled(hf.get_image_features(pixel_values=pixels))
        text = pooled(hf.get_text_features(input_ids=ids, attention_mask=mask))
        logits = hf(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits_per_image
    torch.testing.assert_close(image, image_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(text, text_ref, atol=1e-5, rtol=0)
    img_n, txt_n = image_ref / image_ref.norm(dim=-1, keepdim=True), text_ref / text_ref.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(logits, reference.logit_scale.exp() * img_n @ txt_n.T, atol=1e-4, rtol=0)
    # the other activation is measurably different, so the test can tell the variants apart
    wrong = open_clip_to_hf(reference, cfg, quick_gelu=not quick_gelu)
    with torch.no_grad():
        assert (pooled(wrong.get_image_features(pixel_values=pixels)) - image_ref).abs().max() > 1e-3


def test_config_read_off_the_weights_matches_the_model_config():
    cfg = tiny_cfg(True, head_width=16)
    state = build_open_clip(cfg).state_dict()
    read = open_clip_config_from_state_dict(state, vision_head_width=16, text_head_width=16)
    assert read["embed_dim"] == 16 and read["quick_gelu"] is True
    assert {k: read["vision_cfg"][k] for k in ("layers", "width", "patch_size", "image_size")} == {
        "layers": 2, "width": 32, "patch_size": 8, "image_size": 32}  # fmt: skip
    assert (read["text_cfg"]["context_length"], read["text_cfg"]["vocab_size"], read["text_cfg"]["heads"]) == (CONTEXT, VOCAB, 2)


@pytest.mark.parametrize(
    "name, layers, width, heads, act, projection",
    [("metaclip-h14-quickgelu", 32, 1280, 16, "quick_gelu", 1024), ("openai-vit-b-16", 12, 768, 12, "quick_gelu", 512)],
)
def test_real_configs_match_open_clip_parameter_counts_on_meta(name, layers, width, heads, act, projection):
    from transformers import CLIPModel

    cfg = open_clip_model_config(name)
    config = clip_config_from_open_clip(cfg)
    vision = config.vision_config
    assert (vision.num_hidden_layers, vision.hidden_size, vision.num_attention_heads) == (layers, width, heads)
    assert vision.hidden_act == config.text_config.hidden_act == act and config.projection_dim == projection
    assert (vision.image_size, config.text_config.vocab_size, config.text_config.eos_token_id) == (224, 49408, 49407)
    with torch.device("meta"):
        reference = open_clip.model.CLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"], quick_gelu=cfg["quick_gelu"])
        hf = CLIPModel(config)
    count = sum(p.numel() for p in hf.parameters())
    assert count == sum(p.numel() for p in reference.parameters())
    # converting a meta state dict exercises every key of the real layout without allocating weights
    from hf_captioners.convert.open_clip_to_hf import convert_open_clip_state_dict

    mapped = convert_open_clip_state_dict(reference.state_dict(), config)
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {k: tuple(v.shape) for k, v in hf.state_dict().items()}


def test_unsupported_options_are_refused():
    for vision_extra in ({"ls_init_value": 1e-5}, {"attentional_pool": True}, {"pool_type": "avg"}):
        cfg = tiny_cfg(True)
        cfg["vision_cfg"].update(vision_extra)
        with pytest.raises(ValueError, match="not expressible"):
            clip_config_from_open_clip(cfg)
    with pytest.raises(ValueError, match="init_logit_bias"):
        clip_config_from_open_clip({**tiny_cfg(True), "init_logit_bias": -10.0})


def test_resnet_clip_is_refused_clearly():
    """ClipCap's transformer release used RN50x4 (train.py `--is_rn`, prefix_dim 640): not a transformers CLIP."""
    state = {"visual.attnpool.positional_embedding": torch.zeros(145, 2560), "visual.layer1.0.conv1.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="not a ViT but a ResNet"):
        open_clip_to_hf(state)


def test_extra_tensors_are_an_error():
    cfg = tiny_cfg(True)
    state = build_open_clip(cfg).state_dict()
    state["visual.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="visual.extra.weight"):
        open_clip_to_hf(state, cfg)


def test_checkpoint_file_to_folder(tmp_path):
    from transformers import AutoImageProcessor, CLIPModel

    cfg = tiny_cfg(True)
    reference = build_open_clip(cfg)
    path = tmp_path / "open_clip.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}, "epoch": 3}, path)
    model, count = convert_open_clip(path, tmp_path / "hf", model=cfg)
    assert count == sum(p.numel() for p in reference.parameters())
    loaded = CLIPModel.from_pretrained(tmp_path / "hf")
    assert not (tmp_path / "hf" / "tokenizer.json").exists()  # toy vocabulary: no CLIP tokenizer applies
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pooled(loaded.get_image_features(pixel_values=pixels)),
                                   reference.encode_image(pixels), atol=1e-5, rtol=0)  # fmt: skip
    assert AutoImageProcessor.from_pretrained(tmp_path / "hf").crop_size["height"] == 32


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickles_that_need_code_are_refused_and_not_run(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "payload": _RunsCode(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refused to load.*arbitrary code") as info:
        load_checkpoint(path)
    assert "weights_only=False" in str(info.value) and not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        convert_open_clip(path, tmp_path / "out", model=tiny_cfg(True))
    assert not marker.exists() and not (tmp_path / "out").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
