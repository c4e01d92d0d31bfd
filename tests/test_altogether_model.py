"""Altogether / ClipCap model: fidelity to the original math, generation, freezing, loading, sizes."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from hf_captioners.altogether import AltogetherConfig, AltogetherForConditionalGeneration
from hf_captioners.altogether.modeling_altogether import build_mapper
from hf_captioners.toyworld.tiny_altogether import tiny_altogether, tiny_tokenizer

ALT_TEXTS = ["a red square &amp; friends", None, ["blue circle", "Zorblax photo", "blue circle"]]


@pytest.fixture(scope="module")
def tokenizer_factory():
    base = tiny_tokenizer()
    return lambda: copy.deepcopy(base)


@pytest.fixture(scope="module")
def images():
    return [
        Image.new("RGB", (40, 30), (220, 20, 20)),
        Image.new("RGB", (32, 64), (20, 20, 220)),
        Image.linear_gradient("L").resize((48, 48)).convert("RGB"),
    ]


@pytest.fixture(scope="module", params=["opt", "gpt2"])
def tiny(request, tokenizer_factory):
    model, processor = tiny_altogether(request.param, tokenizer=tokenizer_factory(), seed=1)
    return model, processor


# ---------------------------------------------------------------------------------------------------------
# Re-statement of the originals' math, independent of the model code under test: ClipCap's TransformerMapper
# (rmokady/CLIP_prefix_caption train.py lines 95-217: pre-LN layers, bias-free q/kv projections with kv split
# k-then-v, softmax over keys scaled by head_dim**-0.5, ReLU MLP of ratio 2, the constants' outputs returned)
# and MLP (lines 80-92); Altogether's forward (MetaCLIP apps/altogether model_altogether.py lines 173-179: the
# prefix concatenated before the token embeddings of data_altogether_ft.py's layout, lines 116-132).
# ---------------------------------------------------------------------------------------------------------
def reference_transformer_mapper(sd: dict, x: torch.Tensor, clip_length: int, num_heads: int) -> torch.Tensor:
    b = x.shape[0]
    h = F.linear(x, sd["linear.weight"], sd["linear.bias"]).view(b, clip_length, -1)
    h = torch.cat([h, sd["prefix_const"].unsqueeze(0).expand(b, -1, -1)], dim=1)
    n, c = h.shape[1], h.shape[2]
    hd = c // num_heads
    layer = 0
    while f"transformer.layers.{layer}.norm1.weight" in sd:
        p = f"transformer.layers.{layer}."
        y = F.layer_norm(h, (c,), sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        q = (y @ sd[p + "attn.to_queries.weight"].T).reshape(b, n, num_heads, hd)
        kv = (y @ sd[p + "attn.to_keys_values.weight"].T).reshape(b, n, 2, num_heads, hd)
        keys, values = kv[:, :, 0], kv[:, :, 1]
        attention = (torch.einsum("bnhd,bmhd->bnmh", q, keys) * hd**-0.5).softmax(dim=2)
        out = torch.einsum("bnmh,bmhd->bnhd", attention, values).reshape(b, n, c)
        h = h + F.linear(out, sd[p + "attn.project.weight"], sd[p + "attn.project.bias"])
        y = F.layer_norm(h, (c,), sd[p + "norm2.weight"], sd[p + "norm2.bias"])
        y = F.linear(F.relu(F.linear(y, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])), sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        h = h + y
        layer += 1
    assert layer > 0
    return h[:, clip_length:]


def reference_mlp_mapper(sd: dict, x: torch.Tensor, prefix_length: int) -> torch.Tensor:
    h = torch.tanh(F.linear(x, sd["model.0.weight"], sd["model.0.bias"]))
    return F.linear(h, sd["model.2.weight"], sd["model.2.bias"]).view(x.shape[0], prefix_length, -1)


class ReferenceAltogether:
    """The original forward: CLIP pooled embedding -> (L2 norm) -> mapper -> cat with the token embeddings of
    [alt-text left-padded to prompt_length][caption + eos] -> LM(inputs_embeds, attention_mask)."""

    def __init__(self, model: AltogetherForConditionalGeneration, tokenizer):
        cfg = model.config
        self.cfg, self.tok = cfg, tokenizer
        self.clip = copy.deepcopy(model.vision_model).eval()
        self.lm = copy.deepcopy(model.language_model).eval()
        self.sd = {k: v.detach().clone() for k, v in model.mapper.state_dict().items()}

    def prefix(self, pixel_values):
        x = self.clip(pixel_values=pixel_values).image_embeds
        if self.cfg.normalize_image_embeds:
            x = x / x.norm(dim=-1, keepdim=True)
        if self.cfg.mapper_type == "mlp":
            return reference_mlp_mapper(self.sd, x, self.cfg.prefix_length)
        return reference_transformer_mapper(self.sd, x, self.cfg.clip_length, self.cfg.mapper_num_heads)

    def prompt_tokens(self, alt: str) -> list[int]:
        ids = self.tok(alt, add_special_tokens=False)["input_ids"][: self.cfg.prompt_length] if alt else []
        return [self.tok.pad_token_id] * (self.cfg.prompt_length - len(ids)) + ids

    def embed(self, ids):
        return self.lm.get_input_embeddings()(torch.tensor(ids).view(1, -1) if isinstance(ids, list) else ids)

    def logits(self, pixel_values, alts: list[str], captions: list[str]):
        prefix = self.prefix(pixel_values)
        rows, masks = [], []
        targets = [self.tok(c, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id] for c in captions]
        width = max(map(len, targets))
        for alt, target in zip(alts, targets):
            pad = width - len(target)
            rows.append(self.prompt_tokens(alt) + target + [self.tok.pad_token_id] * pad)
            masks.append([1] * (self.cfg.prompt_length + len(target)) + [0] * pad)
        embeds = torch.cat([prefix, self.embed(torch.tensor(rows))], dim=1)
        mask = torch.cat([torch.ones(len(rows), self.cfg.prefix_length, dtype=torch.long), torch.tensor(masks)], 1)
        return self.lm(inputs_embeds=embeds, attention_mask=mask).logits, targets

    def greedy(self, pixel_values, alt: str, max_new_tokens: int) -> list[int]:
        """ClipCap-style decoding: batch 1, the whole sequence recomputed at every step, no cache."""
        embeds = torch.cat([self.prefix(pixel_values), self.embed(self.prompt_tokens(alt))], dim=1)
        out = []
        for _ in range(max_new_tokens):
            token = int(self.lm(inputs_embeds=embeds, use_cache=False).logits[0, -1].argmax())
            out.append(token)
            if token == self.tok.eos_token_id:
                break
            embeds = torch.cat([embeds, self.embed([token])], dim=1)
        return out


def _new_tokens(sequences, prompt_len: int, eos: int) -> list[list[int]]:
    rows = []
    for seq in sequences.tolist():
        new = seq[prompt_len:]
        rows.append(new[: new.index(eos) + 1] if eos in new else new)
    return rows


@torch.no_grad()
@pytest.mark.parametrize("mapper_type", ["transformer", "mlp"])
def test_logits_and_greedy_tokens_match_reference(mapper_type, tokenizer_factory, images):
    model, processor = tiny_altogether("opt", tokenizer=tokenizer_factory(), mapper_type=mapper_type, seed=3)
    for p in model.mapper.parameters():  # random init of larger scale so a wrong op shows up in the logits
        p.data.normal_(0, 0.3)
    ref = ReferenceAltogether(model, processor.tokenizer)
    alts, caps = ["a red square", "blue circle on grass"], ["one red square.", "a blue circle"]
    batch = processor(images=images[:2], alt_text=alts, captions=caps)

    ours = model(**batch)
    theirs, targets = ref.logits(batch["pixel_values"], alts, caps)
    torch.testing.assert_close(ours.logits, theirs, atol=1e-5, rtol=1e-5)

    # the loss covers caption + eos only, with the usual next-token shift
    start = model.config.prefix_length + model.config.prompt_length
    losses = [
        F.cross_entropy(theirs[i, start - 1 : start - 1 + len(t)], torch.tensor(t), reduction="sum")
        for i, t in enumerate(targets)
    ]
    expected = torch.stack(losses).sum() / sum(map(len, targets))
    torch.testing.assert_close(ours.loss, expected, atol=1e-5, rtol=1e-5)

    for image, alt in zip(images[:2], alts):
        inputs = processor(images=image, alt_text=alt)
        generated = model.generate(**inputs, do_sample=False, max_new_tokens=12)
        ours_tokens = _new_tokens(generated, inputs["input_ids"].shape[1], processor.tokenizer.eos_token_id)[0]
        assert ours_tokens == ref.greedy(inputs["pixel_values"], alt, 12)


@torch.no_grad()
def test_batched_generation_equals_per_example_greedy_and_beam(tiny, images):
    model, processor = tiny
    eos = processor.tokenizer.eos_token_id
    for options in ({"do_sample": False}, {"do_sample": False, "num_beams": 3}):
        batch = processor(images=images, alt_text=ALT_TEXTS)
        batched = _new_tokens(model.generate(**batch, max_new_tokens=10, **options), batch["input_ids"].shape[1], eos)
        single = []
        for image, alt in zip(images, ALT_TEXTS):
            inputs = processor(images=image, alt_text=alt)
            single += _new_tokens(model.generate(**inputs, max_new_tokens=10, **options), inputs["input_ids"].shape[1], eos)
        assert batched == single, options


@torch.no_grad()
def test_kv_cache_and_full_recompute_agree(tiny, images):
    model, processor = tiny
    batch = processor(images=images, alt_text=ALT_TEXTS)
    cached = model.generate(**batch, do_sample=False, max_new_tokens=8)
    uncached = model.generate(**batch, do_sample=False, max_new_tokens=8, use_cache=False)
    assert cached.tolist() == uncached.tolist()


@torch.no_grad()
def test_precomputed_image_embeds_equal_pixels(tiny, images):
    model, processor = tiny
    batch = processor(images=images, alt_text=ALT_TEXTS, captions=["a", "b c", "d e f"])
    image_embeds = model.get_image_features(batch["pixel_values"])
    text_only = processor(alt_text=ALT_TEXTS, captions=["a", "b c", "d e f"])
    assert "pixel_values" not in text_only
    from_pixels = model(**batch)
    from_embeds = model(**text_only, image_embeds=image_embeds)
    torch.testing.assert_close(from_pixels.logits, from_embeds.logits)
    torch.testing.assert_close(from_pixels.loss, from_embeds.loss)

    gen = processor(images=images, alt_text=ALT_TEXTS)
    for options in ({"do_sample": False}, {"do_sample": False, "num_beams": 2}):
        a = model.generate(**gen, max_new_tokens=8, **options)
        b = model.generate(
            input_ids=gen["input_ids"], attention_mask=gen["attention_mask"], image_embeds=image_embeds,
            max_new_tokens=8, **options,
        )  # fmt: skip
        assert a.tolist() == b.tolist()


@torch.no_grad()
def test_sampling_defaults_ship_in_generation_config(tiny, images):
    model, processor = tiny
    gc = model.generation_config
    # infer.py lines 179-186: temperature 0.2, top_p 0.7, max_new_tokens = max_seq_len - rewrite_prompt, i.e. the
    # caption budget training used (here 320 - 16 prompt tokens, capped by the tiny LM's 512 positions)
    assert (gc.do_sample, gc.temperature, gc.top_p) == (True, 0.2, 0.7)
    assert gc.max_new_tokens == min(processor.caption_length, 512 - processor.prefix_length - processor.prompt_length)
    inputs = processor(images=images[:2], alt_text=ALT_TEXTS[:2])
    torch.manual_seed(0)
    first = model.generate(**inputs, max_new_tokens=6)
    torch.manual_seed(0)
    second = model.generate(**inputs, max_new_tokens=6)
    assert first.tolist() == second.tolist()
    texts = processor.batch_decode(first)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_loss_only_on_caption_and_gradients_reach_mapper_not_tower(tiny, images):
    model, processor = tiny
    batch = processor(images=images[:2], alt_text=ALT_TEXTS[:2], captions=["a red square", "blue"])
    model.train()
    try:
        assert not model.vision_model.training and model.mapper.training
        model(**batch).loss.backward()
        assert all(p.grad is None for p in model.vision_model.parameters())
        assert all(p.grad is not None for p in model.mapper.parameters())
        assert model.get_input_embeddings().weight.grad is not None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_loss_from_the_caption_columns_only_equals_the_full_loss(tiny, images):
    """Training asks for logits over the caption columns only (`logits_to_keep`); the loss must not change."""
    model, processor = tiny
    batch = processor(images=images, alt_text=ALT_TEXTS, captions=["a red square", "blue", "a gradient of grey"])
    labels = batch["labels"]
    first = int((labels != -100).any(dim=0).nonzero()[0])
    keep = labels.shape[1] - first + 1
    with torch.no_grad():
        full = model(**batch)
        short = model(**batch, logits_to_keep=keep)
    expected = F.cross_entropy(full.logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
    assert short.logits.shape[1] == keep
    torch.testing.assert_close(short.logits, full.logits[:, -keep:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(full.loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(short.loss, expected, rtol=1e-5, atol=1e-6)


def test_freezing_survives_from_pretrained(tmp_path, tokenizer_factory):
    model, processor = tiny_altogether("gpt2", tokenizer=tokenizer_factory(), freeze_text_model=True)
    model.save_pretrained(tmp_path)
    loaded = AltogetherForConditionalGeneration.from_pretrained(tmp_path)
    assert not any(p.requires_grad for p in loaded.vision_model.parameters())
    assert not any(p.requires_grad for p in loaded.language_model.parameters())
    assert all(p.requires_grad for p in loaded.mapper.parameters())
    loaded.train()
    # ClipCap's ClipCaptionPrefix.train() (CLIP_prefix_caption train.py lines 250-258) keeps the frozen GPT-2
    # in eval mode while the mapper trains: no dropout in the LM
    assert not loaded.vision_model.training and loaded.mapper.training and not loaded.language_model.training
    batch = processor(images=[Image.new("RGB", (40, 30), "red")], alt_text=[None], captions=["a red square"])
    assert torch.equal(loaded(**batch).logits, loaded(**batch).logits)
    # the Auto path goes through the same classmethod
    from transformers import AutoModelForImageTextToText

    auto = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert not any(p.requires_grad for p in auto.vision_model.parameters())
    for (name, a), b in zip(model.state_dict().items(), auto.state_dict().values()):
        assert torch.equal(a, b), name


@torch.no_grad()
def test_dtype_and_device_map(tmp_path, tiny, images):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    half = AltogetherForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.bfloat16, device_map="cpu")
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in half.vision_model.parameters())
    inputs = processor(images=images[:2], alt_text=ALT_TEXTS[:2])
    out = half.generate(**inputs, do_sample=False, max_new_tokens=4)
    assert out.shape[0] == 2 and inputs["input_ids"].shape[1] < out.shape[1] <= inputs["input_ids"].shape[1] + 4
    logits32 = model(**inputs).logits
    logits16 = half(**inputs).logits.float()
    assert (logits16 - logits32).abs().max() < 0.1 * logits32.abs().max()


def test_bad_model_inputs_have_clear_errors(tiny, images):
    model, processor = tiny
    inputs = processor(images=images[:2], alt_text=ALT_TEXTS[:2])
    with pytest.raises(ValueError, match="<image> tokens"):
        model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"][:1])
    with pytest.raises(ValueError, match="no `pixel_values` or `image_embeds`"):
        model(input_ids=inputs["input_ids"])
    with pytest.raises(ValueError, match="exactly one"):
        model(**inputs, image_embeds=torch.zeros(2, model.config.image_embed_dim))
    with pytest.raises(ValueError, match="image_embeds must have shape"):
        model(input_ids=inputs["input_ids"], image_embeds=torch.zeros(2, 7))


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="mapper_type"):
        AltogetherConfig(mapper_type="qformer")
    config = AltogetherConfig(prompt_length=0, mapper_type="mlp", prefix_length=10)
    again = AltogetherConfig.from_dict(config.to_dict())
    assert (again.prompt_length, again.mapper_type, again.prefix_length) == (0, "mlp", 10)
    assert again.text_config.model_type == "opt" and again.vision_config.model_type == "clip_vision_model"
    assert again.auto_map["AutoModelForImageTextToText"].endswith("AltogetherForConditionalGeneration")
    assert "image-to-text" in again.custom_pipelines


# ---------------------------------------------------------------------------------------------------------
# Parameter counts of the real configurations, built on the meta device (no download, no memory)
# ---------------------------------------------------------------------------------------------------------
def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_real_altogether_sizes_on_meta_device():
    from transformers import CLIPVisionConfig, OPTConfig

    metaclip_h14 = CLIPVisionConfig(
        hidden_size=1280, intermediate_size=5120, projection_dim=1024, num_hidden_layers=32,
        num_attention_heads=16, image_size=224, patch_size=14, hidden_act="quick_gelu",
    )  # fmt: skip
    opt_1_3b = OPTConfig(
        vocab_size=50272, hidden_size=2048, ffn_dim=8192, num_hidden_layers=24, num_attention_heads=32,
        max_position_embeddings=2048, word_embed_proj_dim=2048, do_layer_norm_before=True,
        pad_token_id=1, bos_token_id=2, eos_token_id=2,
    )  # fmt: skip
    config = AltogetherConfig(vision_config=metaclip_h14, text_config=opt_1_3b)
    default = AltogetherConfig()  # the defaults are the paper's model
    assert default.text_config.to_dict() | {"transformers_version": None} == opt_1_3b.to_dict() | {"transformers_version": None}
    assert default.vision_config.to_dict() == metaclip_h14.to_dict()
    assert (default.prefix_length, default.clip_length, default.prompt_length, default.mapper_num_layers) == (40, 40, 128, 8)
    with torch.device("meta"):
        model = AltogetherForConditionalGeneration(config)
    assert _count(model.mapper) == 352_616_448  # "≈352.6M"
    assert _count(model.language_model) == 1_315_758_080  # OPT-1.3B
    assert _count(model.vision_model) == 632_076_800  # open_clip ViT-H-14 visual tower incl. projection
    assert not any(p.requires_grad for p in model.vision_model.parameters())


def test_real_clipcap_mapper_sizes():
    from transformers import CLIPVisionConfig, GPT2Config

    gpt2_small = GPT2Config()
    vit_b32 = CLIPVisionConfig(projection_dim=512)
    mlp = AltogetherConfig(
        vision_config=vit_b32, text_config=gpt2_small, mapper_type="mlp", prefix_length=10, prompt_length=0
    )
    with torch.device("meta"):
        assert _count(build_mapper(mlp)) == 31_468_800  # ClipCap MLP k=10 on GPT-2 small: 31.47M
    # ClipCap's transformer mapper (10/10 tokens, 8 layers, 768-d). The released transformer model used
    # CLIP RN50x4, whose embedding is 640-d: 42.73M ("≈42.7M"); on a 512-d ViT-B/32 embedding it is 41.75M.
    for projection_dim, expected in ((640, 42_728_448), (512, 41_745_408)):
        transformer = AltogetherConfig(
            vision_config=CLIPVisionConfig(projection_dim=projection_dim), text_config=gpt2_small,
            prefix_length=10, clip_length=10, prompt_length=0, freeze_text_model=True,
        )  # fmt: skip
        with torch.device("meta"):
            assert _count(build_mapper(transformer)) == expected


@torch.no_grad()
def test_from_backbones_with_paths_full_clip_and_llama(tmp_path, tokenizer_factory, images):
    from transformers import AutoModelForCausalLM, CLIPConfig, CLIPModel, LlamaConfig

    from hf_captioners.altogether import AltogetherProcessor
    from hf_captioners.toyworld.tiny_altogether import tiny_vision_config

    tokenizer = tokenizer_factory()
    tokenizer.save_pretrained(tmp_path / "tok")
    processor = AltogetherProcessor.from_backbones(32, str(tmp_path / "tok"), prefix_length=3, prompt_length=8)
    assert processor.tokenizer.padding_side == "left" and processor.image_token_id == len(processor.tokenizer) - 1

    # a full CLIP checkpoint whose projection width differs from the vision sub-config's default
    vision = tiny_vision_config(32).to_dict()
    clip = CLIPModel(CLIPConfig(
        vision_config=vision, projection_dim=24,
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 99, "projection_dim": 24},
    )).eval()  # fmt: skip
    clip.save_pretrained(tmp_path / "clip")
    llama = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
    ))  # fmt: skip
    llama.save_pretrained(tmp_path / "llama")

    from_paths = AltogetherForConditionalGeneration.from_backbones(
        str(tmp_path / "clip"), str(tmp_path / "llama"), processor=processor, mapper_num_heads=2, mapper_num_layers=1
    )
    from_objects = AltogetherForConditionalGeneration.from_backbones(
        clip, llama, processor=processor, mapper_num_heads=2, mapper_num_layers=1
    )
    pixels = processor(images=images[:2])["pixel_values"]
    expected = clip.get_image_features(pixel_values=pixels)
    expected = expected.pooler_output if hasattr(expected, "pooler_output") else expected
    torch.testing.assert_close(from_paths.get_image_features(pixels), expected)
    torch.testing.assert_close(from_objects.get_image_features(pixels), expected)
    assert from_paths.config.image_embed_dim == 24
    assert from_paths.get_input_embeddings().num_embeddings == len(processor.tokenizer)
    assert (from_paths.config.prefix_length, from_paths.config.prompt_length) == (3, 8)
    assert from_paths.generation_config.pad_token_id == processor.tokenizer.pad_token_id

    inputs = processor(images=images[:2], alt_text=["a", None], captions=["red", "blue square"])
    from_objects.train()
    from_objects.activation_checkpointing_enable()
    with torch.enable_grad():
        from_objects(**inputs).loss.backward()
    assert all(p.grad is not None for p in from_objects.mapper.parameters())
    from_objects.eval()
    out = from_objects.generate(**processor(images=images[:2], alt_text=["a", None]), do_sample=False, max_new_tokens=3)
    assert out.shape[0] == 2

    with pytest.raises(ValueError, match="disagrees"):
        AltogetherForConditionalGeneration.from_backbones(clip, llama, processor=processor, prefix_length=5)
    with pytest.raises(ValueError, match="image_token_id"):
        AltogetherForConditionalGeneration.from_backbones(clip, llama)
