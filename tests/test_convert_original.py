"""Converters from the original checkpoints: synthetic state dicts in each original layout (ClipCap MLP and
transformer mappers with GPT-2, Altogether's DDP `epoch_*.pt` with OPT, antarctic's Lightning `.ckpt` with
OpenAI-layout CLIP + BART and its `.txt`/`.npy` cache) -> convert -> same outputs as a re-statement of the
original forward written from the original key names."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (
    BartForConditionalGeneration,
    CLIPVisionModelWithProjection,
    GPT2Config,
    GPT2LMHeadModel,
    OPTConfig,
    OPTForCausalLM,
)

open_clip = pytest.importorskip("open_clip")

from hf_captioners.altogether.testing_altogether import tiny_tokenizer, tiny_vision_config  # noqa: E402
from hf_captioners.convert.altogether_original import convert_altogether, load_clip  # noqa: E402
from hf_captioners.convert.antarctic_original import convert_antarctic  # noqa: E402
from hf_captioners.convert.checkpoints import CheckpointError  # noqa: E402
from hf_captioners.convert.clipcap import convert_clipcap  # noqa: E402

CAPTIONS = ["a red square on the left", "blue circle"]
ALTS = ["Zorblax red square photo", ""]
HIDDEN, EMBED = 32, 24


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def images():
    return [Image.new("RGB", (40, 30), (220, 20, 20)), Image.linear_gradient("L").resize((48, 48)).convert("RGB")]


def randomize(state: dict, std: float = 0.3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * std if v.is_floating_point() else v for k, v in state.items()}


# ---------------------------------------------------------------------------------------------------------
# The originals' mapper forward (ClipCap's MLP and TransformerMapper), from `clip_project.*` keys only.
# ---------------------------------------------------------------------------------------------------------
def original_mapper(sd: dict, x: torch.Tensor, prefix_length: int, clip_length: int, heads: int) -> torch.Tensor:
    b = x.shape[0]
    if "clip_project.model.0.weight" in sd:
        h = torch.tanh(x @ sd["clip_project.model.0.weight"].T + sd["clip_project.model.0.bias"])
        return (h @ sd["clip_project.model.2.weight"].T + sd["clip_project.model.2.bias"]).view(b, prefix_length, -1)
    h = (x @ sd["clip_project.linear.weight"].T + sd["clip_project.linear.bias"]).view(b, clip_length, -1)
    h = torch.cat([h, sd["clip_project.prefix_const"].expand(b, -1, -1)], dim=1)
    n, c = h.shape[1:]
    i = 0
    while f"clip_project.transformer.layers.{i}.norm1.weight" in sd:
        p = lambda name, i=i: sd[f"clip_project.transformer.layers.{i}.{name}"]  # noqa: E731
        y = F.layer_norm(h, (c,), p("norm1.weight"), p("norm1.bias"))
        q = (y @ p("attn.to_queries.weight").T).reshape(b, n, heads, c // heads)
        kv = (y @ p("attn.to_keys_values.weight").T).reshape(b, n, 2, heads, c // heads)
        att = (torch.einsum("bnhd,bmhd->bnmh", q, kv[:, :, 0]) * (c // heads) ** -0.5).softmax(dim=2)
        h = h + torch.einsum("bnmh,bmhd->bnhd", att, kv[:, :, 1]).reshape(b, n, c) @ p("attn.project.weight").T + p("attn.project.bias")
        y = F.layer_norm(h, (c,), p("norm2.weight"), p("norm2.bias"))
        h = h + F.relu(y @ p("mlp.fc1.weight").T + p("mlp.fc1.bias")) @ p("mlp.fc2.weight").T + p("mlp.fc2.bias")
        i += 1
    return h[:, clip_length:]


def original_logits(lm, prefix, tokenizer, captions, alts=None, prompt_length=0):
    """The originals' training forward: cat(prefix, embed([alt left-padded][caption + eos])) -> LM."""
    rows, masks = [], []
    targets = [tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in captions]
    width = max(map(len, targets))
    for j, target in enumerate(targets):
        alt = tokenizer(alts[j], add_special_tokens=False)["input_ids"][:prompt_length] if alts and alts[j] else []
        prompt = [tokenizer.pad_token_id] * (prompt_length - len(alt)) + alt
        rows.append(prompt + target + [tokenizer.pad_token_id] * (width - len(target)))
        masks.append([1] * (prefix.shape[1] + prompt_length + len(target)) + [0] * (width - len(target)))
    embeds = torch.cat([prefix, lm.get_input_embeddings()(torch.tensor(rows))], dim=1)
    return lm(inputs_embeds=embeds, attention_mask=torch.tensor(masks)).logits, torch.tensor(masks)


def original_greedy(lm, prefix, prompt_ids, vocab, banned, steps):
    """Batch 1, whole sequence recomputed each step (ClipCap style), argmax over the original vocabulary."""
    embeds = torch.cat([prefix, lm.get_input_embeddings()(torch.tensor([prompt_ids]))], dim=1) if prompt_ids else prefix
    out = []
    for _ in range(steps):
        logits = lm(inputs_embeds=embeds, use_cache=False).logits[0, -1, :vocab].clone()
        logits[banned] = float("-inf")
        token = int(logits.argmax())
        out.append(token)
        embeds = torch.cat([embeds, lm.get_input_embeddings()(torch.tensor([[token]]))], dim=1)
    return out


def clipcap_state(tokenizer, mapper: str, seed: int) -> tuple[dict, GPT2Config]:
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=HIDDEN, n_layer=2, n_head=2, n_positions=128,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(seed)
    state = {f"gpt.{k}": v for k, v in GPT2LMHeadModel(config).state_dict().items()}
    for i in range(config.n_layer):  # the buffers transformers < 4.x stored in every block
        state[f"gpt.transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(128, 128, dtype=torch.uint8)).view(1, 1, 128, 128)
        state[f"gpt.transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    g = torch.Generator().manual_seed(seed)
    if mapper == "mlp":  # prefix_length 5
        shapes = {"model.0.weight": (HIDDEN * 5 // 2, EMBED), "model.0.bias": (HIDDEN * 5 // 2,),
                  "model.2.weight": (HIDDEN * 5, HIDDEN * 5 // 2), "model.2.bias": (HIDDEN * 5,)}  # fmt: skip
    else:  # prefix_length 4, clip_length 3, 2 layers
        shapes = {"linear.weight": (3 * HIDDEN, EMBED), "linear.bias": (3 * HIDDEN,), "prefix_const": (4, HIDDEN)}
        for i in range(2):
            p = f"transformer.layers.{i}."
            shapes.update({p + "norm1.weight": (HIDDEN,), p + "norm1.bias": (HIDDEN,), p + "norm2.weight": (HIDDEN,),
                           p + "norm2.bias": (HIDDEN,), p + "attn.to_queries.weight": (HIDDEN, HIDDEN),
                           p + "attn.to_keys_values.weight": (2 * HIDDEN, HIDDEN),
                           p + "attn.project.weight": (HIDDEN, HIDDEN), p + "attn.project.bias": (HIDDEN,),
                           p + "mlp.fc1.weight": (2 * HIDDEN, HIDDEN), p + "mlp.fc1.bias": (2 * HIDDEN,),
                           p + "mlp.fc2.weight": (HIDDEN, 2 * HIDDEN), p + "mlp.fc2.bias": (HIDDEN,)})  # fmt: skip
    for name, shape in shapes.items():
        state[f"clip_project.{name}"] = torch.randn(shape, generator=g) * (0.3 if len(shape) > 1 else 1.0)
    return state, config


@pytest.mark.parametrize("mapper", ["mlp", "transformer"])
def test_clipcap_equals_the_original_forward(mapper, tokenizer, images, tmp_path):
    state, gpt_config = clipcap_state(tokenizer, mapper, seed=3)
    path = tmp_path / "coco_prefix-009.pt"
    torch.save(state, path)  # ClipCap saved the bare state dict
    clip = CLIPVisionModelWithProjection(tiny_vision_config(32, projection_dim=EMBED)).eval()
    model, processor, count = convert_clipcap(path, clip, tokenizer=copy.deepcopy(tokenizer), text_config=gpt_config,
                                              mapper_num_heads=4, out_dir=tmp_path / "out")  # fmt: skip
    cfg = model.config
    assert (cfg.prompt_length, cfg.mapper_type, cfg.normalize_image_embeds) == (0, mapper, False)
    assert cfg.prefix_length == (5 if mapper == "mlp" else 4) and (mapper == "mlp" or cfg.clip_length == 3)
    tied_and_buffers = (".attn.bias", ".attn.masked_bias", "lm_head.weight")  # lm_head is a copy of wte
    assert count == sum(v.numel() for k, v in state.items() if not k.endswith(tied_and_buffers))

    lm = GPT2LMHeadModel(gpt_config).eval()
    lm.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("gpt.") and not k.endswith((".attn.bias", ".attn.masked_bias"))})
    pixels = processor(images=images)["pixel_values"]
    with torch.no_grad():
        embeds = clip(pixel_values=pixels).image_embeds  # ClipCap: raw (unnormalised) CLIP features
        prefix = original_mapper(state, embeds, cfg.prefix_length, cfg.clip_length, heads=4)
        expected, mask = original_logits(lm, prefix, tokenizer, CAPTIONS)
        batch = processor(images=images, captions=CAPTIONS)
        got = model(**batch).logits
    assert torch.equal(batch["attention_mask"], mask)
    vocab = gpt_config.vocab_size
    torch.testing.assert_close(got[..., :vocab], expected, atol=1e-4, rtol=1e-4)

    # greedy decoding (KV cache, our placeholders) == the original's recompute-everything loop
    banned = [t for t in model.generation_config.suppress_tokens if t < vocab]
    with torch.no_grad():
        out = model.generate(**processor(images=images[:1]), do_sample=False, num_beams=1, max_new_tokens=6,
                             eos_token_id=None)  # fmt: skip
        ref = original_greedy(lm, prefix[:1], [], vocab, banned, 6)
    assert out[0, cfg.prefix_length :].tolist() == ref
    assert model.generation_config.num_beams == 5 and not model.generation_config.do_sample
    assert set(model.generation_config.suppress_tokens) >= {processor.image_token_id}


def test_clipcap_layout_errors(tokenizer):
    state, gpt_config = clipcap_state(tokenizer, "mlp", seed=0)
    clip = CLIPVisionModelWithProjection(tiny_vision_config(32, projection_dim=16))
    with pytest.raises(CheckpointError, match="reads 24-d CLIP embeddings.*16-d"):
        convert_clipcap(state, clip, tokenizer=copy.deepcopy(tokenizer), text_config=gpt_config)
    clip = CLIPVisionModelWithProjection(tiny_vision_config(32, projection_dim=EMBED))
    broken = {k: v for k, v in state.items() if k != "gpt.transformer.h.1.mlp.c_fc.weight"}
    with pytest.raises(CheckpointError, match="missing 1 keys.*h.1.mlp.c_fc.weight"):
        convert_clipcap(broken, clip, tokenizer=copy.deepcopy(tokenizer), text_config=gpt_config)
    with pytest.raises(CheckpointError, match="outside clip_project"):
        convert_clipcap({**state, "optimizer.step": torch.zeros(1)}, clip, tokenizer=copy.deepcopy(tokenizer),
                        text_config=gpt_config)  # fmt: skip
    odd = {k: v for k, v in state.items() if not k.startswith("clip_project.")}
    with pytest.raises(CheckpointError, match="expected clip_project"):
        convert_clipcap(odd, clip, tokenizer=copy.deepcopy(tokenizer), text_config=gpt_config)


def tiny_open_clip(embed_dim: int, vocab: int = 49408, seed: int = 0):
    cfg = {"embed_dim": embed_dim, "quick_gelu": True,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": HIDDEN, "head_width": 16, "patch_size": 8},
           "text_cfg": {"context_length": 77, "vocab_size": vocab, "width": HIDDEN, "heads": 2, "layers": 1}}  # fmt: skip
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"], quick_gelu=True)
    model.load_state_dict(randomize(model.state_dict(), 0.2, seed), strict=False)
    return model.eval(), cfg


def test_altogether_epoch_checkpoint_with_open_clip_equals_the_original_forward(tokenizer, images, tmp_path):
    reference_clip, clip_cfg = tiny_open_clip(EMBED, vocab=64)
    clip_path = tmp_path / "metaclip.pt"
    torch.save({"state_dict": reference_clip.state_dict()}, clip_path)
    opt_config = OPTConfig(vocab_size=len(tokenizer) + 8, hidden_size=HIDDEN, ffn_dim=2 * HIDDEN, num_hidden_layers=2,
                           num_attention_heads=2, max_position_embeddings=512, word_embed_proj_dim=HIDDEN,
                           pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id,
                           eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(5)
    opt_state = OPTForCausalLM(opt_config).state_dict()
    mapper_state, _ = clipcap_state(tokenizer, "transformer", seed=5)
    state = {f"module.gpt.{k}": v for k, v in opt_state.items()}
    state.update({f"module.{k}": v for k, v in mapper_state.items() if k.startswith("clip_project.")})
    path = tmp_path / "epoch_2.pt"
    torch.save({"state_dict": state, "epoch": 2, "step": 1234}, path)

    clip = load_clip(open_clip_checkpoint=clip_path, open_clip_model=clip_cfg)
    model, processor, count = convert_altogether(path, clip, tokenizer=copy.deepcopy(tokenizer), text_config=opt_config,
                                                 prompt_length=8, mapper_num_heads=4)  # fmt: skip
    cfg = model.config
    assert (cfg.prompt_length, cfg.prefix_length, cfg.clip_length, cfg.mapper_num_layers) == (8, 4, 3, 2)
    assert cfg.normalize_image_embeds and count == sum(v.numel() for v in state.values()) - opt_state["lm_head.weight"].numel()
    assert model.language_model.get_input_embeddings().num_embeddings == opt_config.vocab_size  # <image> fits: no resize

    lm = OPTForCausalLM(opt_config).eval()
    lm.load_state_dict(opt_state)
    pixels = processor(images=images)["pixel_values"]
    with torch.no_grad():
        feats = reference_clip.encode_image(pixels)  # MetaCLIP through open_clip, as the original ran it
        prefix = original_mapper(state_dict_without(state, "module."), F.normalize(feats, dim=-1), 4, 3, heads=4)
        expected, mask = original_logits(lm, prefix, tokenizer, CAPTIONS, ALTS, prompt_length=8)
        batch = processor(images=images, alt_text=ALTS, captions=CAPTIONS)
        got = model(**batch).logits
    assert torch.equal(batch["attention_mask"], mask)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)

    with torch.no_grad():
        inputs = processor(images=images[:1], alt_text=ALTS[:1])
        out = model.generate(**inputs, do_sample=False, max_new_tokens=6, eos_token_id=None)
        prompt = inputs["input_ids"][0, cfg.prefix_length :].tolist()
        ref = original_greedy(lm, prefix[:1], prompt, opt_config.vocab_size, [processor.image_token_id], 6)
    assert out[0, cfg.prefix_length + cfg.prompt_length :].tolist() == ref

    mixed = {**state, "gpt.extra": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="without the DDP 'module.' prefix"):
        convert_altogether(mixed, clip, tokenizer=copy.deepcopy(tokenizer), text_config=opt_config)
    with pytest.raises(ValueError, match="exactly one CLIP"):
        load_clip()


def state_dict_without(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items()}


# ---------------------------------------------------------------------------------------------------------
# antarctic-captions
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def antarctic_release(tmp_path_factory):
    from hf_captioners.antarctic_tiny import tiny_config, tiny_tokenizers, toy_texts

    root = tmp_path_factory.mktemp("antarctic_release")
    perceiver, clip_cfg = tiny_open_clip(16, seed=7)
    texts = toy_texts(40)
    _, bart_tok = tiny_tokenizers(texts)
    bart_config = tiny_config(bart_tok, bart_tok).bart_config
    torch.manual_seed(8)
    bart = BartForConditionalGeneration(bart_config).eval()
    bart.load_state_dict(randomize(bart.state_dict(), 0.1, seed=8), strict=False)
    bart.tie_weights()
    state = {f"perceiver.{k}": v for k, v in perceiver.state_dict().items()}
    state.update({f"model.{k}": v for k, v in bart.state_dict().items()})
    ckpt = root / "epoch=5-step=0.ckpt"
    torch.save({"state_dict": state, "epoch": 5, "global_step": 22000, "pytorch-lightning_version": "1.1.8"}, ckpt)
    entries = ["red", "blue", "circle", "square", "a red", "blue circle", "on the", "the left", "green", "big"]
    with torch.no_grad():
        emb = F.normalize(perceiver.encode_text(open_clip.tokenize(entries)), dim=-1).numpy().astype(np.float32)
    (root / "postcache.txt").write_text("".join(e + "\n" for e in entries))
    np.save(root / "postcache.npy", emb)
    return {"root": root, "ckpt": ckpt, "perceiver": perceiver, "clip_cfg": clip_cfg, "bart": bart,
            "bart_tok": bart_tok, "bart_config": bart_config, "entries": entries, "state": state}  # fmt: skip


def test_antarctic_lightning_checkpoint_equals_the_original_chain(antarctic_release, images, tmp_path):
    r = antarctic_release
    model, processor, count = convert_antarctic(
        r["ckpt"], r["root"] / "postcache.txt", r["root"] / "postcache.npy", bart_tokenizer=r["bart_tok"],
        clip_model_config=r["clip_cfg"], bart_config=r["bart_config"], out_dir=tmp_path / "out", table_top_k=3,
    )  # fmt: skip
    bart_values = sum(p.numel() for p in r["bart"].parameters()) + r["bart"].final_logits_bias.numel()  # + buffer
    assert count == sum(p.numel() for p in r["perceiver"].parameters()) + bart_values
    assert model.cache.entries == r["entries"] and model.config.table_top_k == 3
    perceiver, bart = r["perceiver"], r["bart"]
    pixels = processor(images=images)["pixel_values"]
    with torch.no_grad():
        image = F.normalize(perceiver.encode_image(pixels), dim=-1)
        torch.testing.assert_close(model.get_image_features(pixels), image, atol=1e-5, rtol=0)
        cache = torch.from_numpy(np.load(r["root"] / "postcache.npy"))
        top = (image @ cache.T).topk(3, dim=-1)
        tables = ["".join(r["entries"][i] + " | " for i in row) for row in top.indices.tolist()]
        entries, scores, _ = model.retrieve(pixel_values=pixels)
        assert ["".join(e + " | " for e in row) for row in entries] == tables
        torch.testing.assert_close(scores, top.values, atol=1e-5, rtol=0)

        enc = r["bart_tok"](tables, padding=True, truncation=True, max_length=128, return_tensors="pt")
        labels = r["bart_tok"](CAPTIONS, padding=True, return_tensors="pt")["input_ids"]
        ref = bart(**enc, labels=labels.masked_fill(labels == r["bart_tok"].pad_token_id, -100))
        got = model(**processor(tables=tables, text_target=CAPTIONS))
        torch.testing.assert_close(got.logits, ref.logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(got.loss, ref.loss, atol=1e-5, rtol=0)

        # candidates re-ranked by the original CLIP (open_clip tokenizer and encode_text)
        results = model.caption(pixels, processor, generate_kwargs={"max_new_tokens": 6}, return_candidates=True)
        for i, result in enumerate(results):
            text = F.normalize(perceiver.encode_text(open_clip.tokenize(result["candidates"])), dim=-1)
            clip_scores = text @ image[i]
            torch.testing.assert_close(torch.tensor(result["scores"]), clip_scores, atol=1e-5, rtol=0)
            assert result["caption"] == result["candidates"][int(clip_scores.argmax())]


def test_antarctic_converted_folder_reloads(antarctic_release, images, tmp_path):
    from transformers import AutoModel, AutoProcessor

    r = antarctic_release
    out = tmp_path / "out"
    model, processor, _ = convert_antarctic(r["ckpt"], r["root"] / "postcache.txt", r["root"] / "postcache.npy",
                                            bart_tokenizer=r["bart_tok"], clip_model_config=r["clip_cfg"],
                                            bart_config=r["bart_config"], out_dir=out)  # fmt: skip
    loaded, loaded_processor = AutoModel.from_pretrained(out), AutoProcessor.from_pretrained(out)
    assert loaded.cache.entries == r["entries"]
    texts = ["a red circle", "Caf&eacute; &amp; blue"]
    assert loaded_processor.clip_tokenize(texts)["input_ids"].tolist() == processor.clip_tokenize(texts)["input_ids"].tolist()
    kwargs = {"generate_kwargs": {"max_new_tokens": 6}}
    pixels = processor(images=images)["pixel_values"]
    assert loaded.caption(pixels, loaded_processor, **kwargs) == model.caption(pixels, processor, **kwargs)


def test_antarctic_layout_errors(antarctic_release, tmp_path):
    r = antarctic_release
    kwargs = {"bart_tokenizer": r["bart_tok"], "clip_model_config": r["clip_cfg"], "bart_config": r["bart_config"]}
    with pytest.raises(CheckpointError, match="outside perceiver"):
        convert_antarctic({**r["state"], "loss_fn.weight": torch.zeros(1)}, None, None, **kwargs)
    state = dict(r["state"])
    state["model.lm_head.weight"] = state["model.lm_head.weight"] + 1
    with pytest.raises(CheckpointError, match="lm_head.weight differs"):
        convert_antarctic(state, None, None, **kwargs)
    with pytest.raises(ValueError, match="needs both files"):
        convert_antarctic(r["state"], r["root"] / "postcache.txt", None, **kwargs)
    np.save(tmp_path / "wrong.npy", np.ones((len(r["entries"]), 7), np.float32))
    with pytest.raises(ValueError, match="dim 7"):
        convert_antarctic(r["state"], r["root"] / "postcache.txt", tmp_path / "wrong.npy", **kwargs)
