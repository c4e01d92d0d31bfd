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

from hf_captioners.antarctic import AntarcticRetriever  # noqa: E402
from hf_captioners.registry import model_pipeline  # noqa: E402

open_clip = pytest.importorskip("open_clip")

from hf_captioners.convert.altogether_original import convert_altogether, load_clip  # noqa: E402
from hf_captioners.convert.antarctic_original import convert_antarctic  # noqa: E402
from hf_captioners.convert.checkpoints import CheckpointError  # noqa: E402
from hf_captioners.convert.clipcap import convert_clipcap  # noqa: E402
from hf_captioners.toyworld.tiny_altogether import tiny_tokenizer, tiny_vision_config  # noqa: E402

CAPTIONS = ["a red square on the left", "blue circle"]
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
# Re-statements of the originals, from their files (never their code): ClipCap = rmokady/CLIP_prefix_caption
# (train.py, predict.py); Altogether = facebookresearch/MetaCLIP apps/altogether (model_altogether.py,
# data_altogether_ft.py, train_altogether.py, infer.py).
# ---------------------------------------------------------------------------------------------------------
HEADS = 8  # TransformerMapper hard-codes 8 heads (train.py line 215; model_altogether.py line 136)


def original_mapper(sd: dict, x: torch.Tensor, prefix_length: int, clip_length: int) -> torch.Tensor:
    """MLP (train.py lines 80-92: Linear, Tanh, Linear) or TransformerMapper (lines 203-217): linear to
    clip_length tokens, learned constants appended, pre-LN layers (lines 144-163) whose attention (lines 112-141)
    has bias-free q / kv projections, kv split k-then-v, softmax over keys, scale head_dim**-0.5; MLP ratio 2
    (Transformer default, line 186) with ReLU; the constants' outputs are the prefix."""
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
        q = (y @ p("attn.to_queries.weight").T).reshape(b, n, HEADS, c // HEADS)
        kv = (y @ p("attn.to_keys_values.weight").T).reshape(b, n, 2, HEADS, c // HEADS)
        att = (torch.einsum("bnhd,bmhd->bnmh", q, kv[:, :, 0]) * (c // HEADS) ** -0.5).softmax(dim=2)
        h = h + torch.einsum("bnmh,bmhd->bnhd", att, kv[:, :, 1]).reshape(b, n, c) @ p("attn.project.weight").T + p("attn.project.bias")
        y = F.layer_norm(h, (c,), p("norm2.weight"), p("norm2.bias"))
        h = h + F.relu(y @ p("mlp.fc1.weight").T + p("mlp.fc1.bias")) @ p("mlp.fc2.weight").T + p("mlp.fc2.bias")
        i += 1
    return h[:, clip_length:]


def clipcap_train_step(lm, prefix, tokenizer, captions):
    """ClipCocoDataset (train.py lines 26-39, 70): `tokenizer.encode(caption)` with no end-of-text, padded with -1,
    pads set to 0 and masked (prefix mask ones); ClipCaptionModel.forward (lines 225-234) concatenates the prefix
    and the token embeddings; train() (lines 314-316): logits[:, prefix_length - 1 : -1], cross-entropy with
    ignore_index=0. Returns (logits over the caption positions, loss, attention mask)."""
    ids = [tokenizer.encode(c, add_special_tokens=False) for c in captions]
    width = max(map(len, ids))
    tokens = torch.tensor([t + [-1] * (width - len(t)) for t in ids])
    mask = tokens.ge(0)
    tokens = tokens.masked_fill(~mask, 0)
    mask = torch.cat([torch.ones(len(ids), prefix.shape[1]), mask.float()], dim=1)
    embeds = torch.cat([prefix, lm.get_input_embeddings()(tokens)], dim=1)
    logits = lm(inputs_embeds=embeds, attention_mask=mask).logits[:, prefix.shape[1] - 1 : -1]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.flatten(), ignore_index=0)
    return logits, loss, mask.long()


def clipcap_generate2(lm, prefix, stop_id: int, entry_length: int = 67) -> list[int]:
    """predict.py `generate2` (lines 240-302): one image, the whole sequence recomputed each step, top-p
    filtering that never removes the best token then argmax (greedy), the stop token kept, at most 67 tokens."""
    embeds, out = prefix, []
    for _ in range(entry_length):
        token = int(lm(inputs_embeds=embeds).logits[0, -1].argmax())
        out.append(token)
        embeds = torch.cat([embeds, lm.get_input_embeddings()(torch.tensor([[token]]))], dim=1)
        if token == stop_id:
            break
    return out


def clipcap_generate_beam(lm, prefix, stop_id: int, beam_size: int = 5, entry_length: int = 67) -> list[list[int]]:
    """predict.py `generate_beam` (lines 164-237), one image: log-probabilities as softmax().log(); the first
    step's top `beam_size` tokens start the beams; afterwards a stopped beam can only append token 0 at no cost
    (its length frozen), every other beam grows by one, and the next beams are the top `beam_size` of all
    (beam, token) pairs by summed log-probability DIVIDED BY the beam's length; stop when every beam has emitted
    the stop token or after `entry_length` steps. Returns the beams' tokens (up to their length), sorted by mean
    log-probability, best first."""
    logprobs = lm(inputs_embeds=prefix).logits[0, -1].softmax(-1).log()
    scores, first = logprobs.topk(beam_size)
    beams = [[int(t)] for t in first]
    lengths = [1.0] * beam_size
    stopped = [t == stop_id for t in first.tolist()]
    embeds = prefix.expand(beam_size, -1, -1)
    embeds = torch.cat([embeds, lm.get_input_embeddings()(first)[:, None]], dim=1)
    for _ in range(entry_length - 1):
        if all(stopped):
            break
        logprobs = lm(inputs_embeds=embeds).logits[:, -1].softmax(-1).log()
        vocab = logprobs.shape[-1]
        candidates = []
        for b in range(beam_size):
            row = torch.full((vocab,), float("-inf")) if stopped[b] else logprobs[b]
            if stopped[b]:
                row[0] = 0.0
            length = lengths[b] + (0.0 if stopped[b] else 1.0)
            candidates.append((scores[b] + row) / length)
        means, flat = torch.cat(candidates).topk(beam_size)
        source, tokens = (flat // vocab).tolist(), (flat % vocab).tolist()
        lengths = [lengths[b] + (0.0 if stopped[b] else 1.0) for b in source]
        scores = means * torch.tensor(lengths)
        beams = [beams[b] + [t] for b, t in zip(source, tokens)]
        stopped = [stopped[b] or t == stop_id for b, t in zip(source, tokens)]
        embeds = torch.cat([embeds[source], lm.get_input_embeddings()(torch.tensor(tokens))[:, None]], dim=1)
    order = (scores / torch.tensor(lengths)).argsort(descending=True).tolist()
    return [beams[b][: int(lengths[b])] for b in order]


def clipcap_state(tokenizer, mapper: str, seed: int, stop_scale: float = 1.0) -> tuple[dict, GPT2Config]:
    """`ClipCaptionModel.state_dict()` as train.py saves it (line 330): `clip_project.*` + `gpt.*`, with the causal
    mask buffers the transformers of 2021 stored in every GPT-2 block. `stop_scale` scales the "." row of the
    (tied) embeddings so that random weights stop at "." now and then."""
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=HIDDEN, n_layer=2, n_head=2, n_positions=128,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(seed)
    gpt = GPT2LMHeadModel(config)
    with torch.no_grad():
        gpt.transformer.wte.weight[tokenizer.encode(".", add_special_tokens=False)[0]] *= stop_scale
    state = {f"gpt.{k}": v for k, v in gpt.state_dict().items()}
    for i in range(config.n_layer):
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
        state[f"clip_project.{name}"] = torch.randn(shape, generator=g) * (0.6 if len(shape) > 1 else 1.0)
    return state, config


def _reference_gpt2(state, config):
    lm = GPT2LMHeadModel(config).eval()
    lm.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("gpt.") and not k.endswith((".attn.bias", ".attn.masked_bias"))})
    return lm


MANY_IMAGES = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (30 + 7 * i, 40 + 5 * i, 3), dtype=np.uint8))
               for i in range(6)]  # fmt: skip
MANY_CAPTIONS = ["a red square on the left.", "blue circle", "a big green triangle at the top right.", "x", "two shapes",
                 "a small yellow star"]  # fmt: skip


@pytest.mark.parametrize("mapper", ["mlp", "transformer"])
def test_clipcap_equals_the_original_forward_and_loss(mapper, tokenizer, tmp_path):
    state, gpt_config = clipcap_state(tokenizer, mapper, seed=3)
    path = tmp_path / "coco_prefix-009.pt"
    torch.save(state, path)
    clip = CLIPVisionModelWithProjection(tiny_vision_config(32, projection_dim=EMBED)).eval()
    model, processor, count = convert_clipcap(path, clip, tokenizer=copy.deepcopy(tokenizer), text_config=gpt_config,
                                              out_dir=tmp_path / "out")  # fmt: skip
    cfg = model.config
    assert (cfg.prompt_length, cfg.mapper_type, cfg.normalize_image_embeds, cfg.mapper_num_heads) == (0, mapper, False, 8)
    assert cfg.prefix_length == (5 if mapper == "mlp" else 4) and (mapper == "mlp" or cfg.clip_length == 3)
    tied_and_buffers = (".attn.bias", ".attn.masked_bias", "lm_head.weight")  # lm_head is a copy of wte
    assert count == sum(v.numel() for k, v in state.items() if not k.endswith(tied_and_buffers))
    # <image> and <pad> were added past GPT-2's vocabulary: they get no logits, so the distribution is GPT-2's
    assert len(processor.tokenizer) > gpt_config.vocab_size == cfg.lm_vocab_size

    lm = _reference_gpt2(state, gpt_config)
    with torch.no_grad():
        embeds = clip(pixel_values=processor(images=MANY_IMAGES)["pixel_values"]).image_embeds  # raw features
        prefix = original_mapper(state, embeds, cfg.prefix_length, cfg.clip_length)
        logits, loss, mask = clipcap_train_step(lm, prefix, processor.tokenizer, MANY_CAPTIONS)
        batch = processor(images=MANY_IMAGES, captions=MANY_CAPTIONS)  # no end-of-text, as train.py line 70
        got = model(**batch)
    assert torch.equal(batch["attention_mask"], mask)
    assert got.logits.shape[-1] == gpt_config.vocab_size
    torch.testing.assert_close(got.logits[:, cfg.prefix_length - 1 : -1], logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.loss, loss, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mapper", ["mlp", "transformer"])
def test_clipcap_decodes_as_the_original(mapper, tokenizer, tmp_path):
    state, gpt_config = clipcap_state(tokenizer, mapper, seed=13, stop_scale=2.0)
    torch.manual_seed(0)
    clip = CLIPVisionModelWithProjection(tiny_vision_config(32, projection_dim=EMBED)).eval()
    model, processor, _ = convert_clipcap(state, clip, tokenizer=copy.deepcopy(tokenizer), text_config=gpt_config)
    gen, stop = model.generation_config, tokenizer.encode(".", add_special_tokens=False)[0]
    assert (gen.do_sample, gen.num_beams, gen.max_new_tokens, gen.eos_token_id) == (False, 1, 67, stop)
    lm, p, steps = _reference_gpt2(state, gpt_config), model.config.prefix_length, 30  # 67 in the original; 30 is quicker
    inputs = processor(images=MANY_IMAGES[:3])
    lengths = []
    with torch.no_grad():
        prefix = original_mapper(state, clip(pixel_values=inputs["pixel_values"]).image_embeds, p, model.config.clip_length)
        greedy = model.generate(**inputs, max_new_tokens=steps)  # the converted defaults: generate2
        beams = model.generate(**inputs, num_beams=5, num_return_sequences=5, max_new_tokens=steps,
                               custom_generate=model.clipcap_beam_search)  # fmt: skip
        pad = processor.tokenizer.pad_token_id
        for i in range(3):
            assert [t for t in greedy[i, p:].tolist() if t != pad] == clipcap_generate2(lm, prefix[i : i + 1], stop, steps), i
            expected = clipcap_generate_beam(lm, prefix[i : i + 1], stop, 5, steps)
            assert [[t for t in row[p:].tolist() if t != pad] for row in beams[5 * i : 5 * i + 5]] == expected, i
            lengths += [len(beam) for beam in expected]
    assert min(lengths) < steps and len(set(lengths)) > 2  # beams stopping at "." at different lengths were compared


def test_clipcap_frozen_lm_and_normalized_prefix(tokenizer):
    """The transformer release: GPT-2 frozen (ClipCaptionPrefix, train.py lines 250-258, keeps it in eval mode)
    and features L2-normalised (`--normalize_prefix`, train.py lines 44-46)."""
    state, gpt_config = clipcap_state(tokenizer, "transformer", seed=5)
    clip = CLIPVisionModelWithProjection(tiny_vision_config(32, projection_dim=EMBED)).eval()
    model, processor, _ = convert_clipcap(state, clip, tokenizer=copy.deepcopy(tokenizer), text_config=gpt_config,
                                          normalize_prefix=True, freeze_text_model=True)  # fmt: skip
    assert model.config.normalize_image_embeds and model.config.freeze_text_model
    model.train()
    assert model.mapper.training and not model.language_model.training
    lm = _reference_gpt2(state, gpt_config)
    with torch.no_grad():
        embeds = clip(pixel_values=processor(images=MANY_IMAGES)["pixel_values"]).image_embeds
        prefix = original_mapper(state, embeds / embeds.norm(2, -1, keepdim=True), 4, 3)
        _, loss, _ = clipcap_train_step(lm, prefix, processor.tokenizer, MANY_CAPTIONS)
        got = model(**processor(images=MANY_IMAGES, captions=MANY_CAPTIONS)).loss
    torch.testing.assert_close(got, loss, atol=1e-5, rtol=1e-5)  # equal in train mode: no dropout in GPT-2
    model.eval()


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


def altogether_ft_example(tokenizer, caption: str, alt: str, prefix_length: int, prompt_length: int, max_seq_len: int):
    """data_altogether_ft.py lines 116-139 (and data_altogether_pt.py lines 157-181): caption + </s>; the chosen
    prompt's first `rewrite_prompt` tokens left-padded with <pad>; the TEXT cut to `max_seq_len` and right-padded;
    attention mask over prefix + text with `[:-padding_len] = 1`; target mask over the caption part likewise (so
    an example with no padding at all gets all-zero masks)."""
    pad = tokenizer.pad_token_id
    tokens = tokenizer.encode(caption, add_special_tokens=False) + [tokenizer.eos_token_id]
    prompt = tokenizer.encode(alt, add_special_tokens=False)[:prompt_length]
    tokens = ([pad] * (prompt_length - len(prompt)) + prompt + tokens)[:max_seq_len]
    padding_len = max(0, max_seq_len - len(tokens))
    tokens += [pad] * padding_len
    attention = torch.zeros(prefix_length + len(tokens))
    attention[:-padding_len] = 1.0
    mask = torch.zeros(max_seq_len - prompt_length)
    mask[:-padding_len] = 1.0
    return torch.tensor(tokens), attention, mask


def altogether_ft_loss(lm, prefix, tokens, attention, masks, caption_length: int):
    """train_altogether.py lines 123-129: model(tokens[:, :-1], features, attention[:, :-1]) (the model,
    model_altogether.py lines 173-179, puts the prefix before the token embeddings), the last `caption_length`
    logits against tokens[:, -caption_length:], summed over the target mask / (mask sum + 1e-6)."""
    embeds = torch.cat([prefix, lm.get_input_embeddings()(tokens[:, :-1])], dim=1)
    logits = lm(inputs_embeds=embeds, attention_mask=attention[:, :-1]).logits[:, -caption_length:]
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tokens[:, -caption_length:].flatten(), reduction="none")
    return (loss * masks.flatten()).sum() / (masks.sum() + 1e-6)


def altogether_infer(lm, prefix, tokenizer, prompts: list[str], prompt_length: int, max_new_tokens: int):
    """infer.py lines 120-131 and 171-189: each prompt's first `rewrite_prompt` tokens left-padded with <pad>, the
    mapped prefix concatenated before their embeddings, `generate(inputs_embeds=..., max_new_tokens, temperature
    0.2, do_sample, top_p 0.7)` with NO attention mask (the pads are attended). Returns the new tokens."""
    rows = []
    for prompt in prompts:
        ids = tokenizer.encode(prompt, add_special_tokens=False)[:prompt_length]
        rows.append([tokenizer.pad_token_id] * (prompt_length - len(ids)) + ids)
    embeds = torch.cat([prefix, lm.get_input_embeddings()(torch.tensor(rows))], dim=1)
    return lm.generate(inputs_embeds=embeds, max_new_tokens=max_new_tokens, temperature=0.2, do_sample=True,
                       top_p=0.7, use_cache=True)  # fmt: skip


def altogether_release(tokenizer, tmp_path, spare_rows: int, seed: int = 5):
    """An Altogether `epoch_ft.pt` as MetaCLIP's save_checkpoint writes it (checkpoint.py lines 51-65: step,
    the DDP model's state_dict with `module.` keys, the optimizer state, positions), an OPT with `spare_rows`
    embedding rows past the tokenizer (facebook/opt-1.3b has 50272 rows for 50265 tokens) and a MetaCLIP
    (open_clip layout) checkpoint."""
    reference_clip, clip_cfg = tiny_open_clip(EMBED, vocab=64)
    torch.save({"state_dict": reference_clip.state_dict()}, tmp_path / "metaclip.pt")
    opt_config = OPTConfig(vocab_size=len(tokenizer) + spare_rows, hidden_size=HIDDEN, ffn_dim=2 * HIDDEN,
                           num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=512,
                           word_embed_proj_dim=HIDDEN, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(seed)
    lm = OPTForCausalLM(opt_config).eval()
    mapper_state, _ = clipcap_state(tokenizer, "transformer", seed=seed)
    state = {f"module.gpt.{k}": v for k, v in lm.state_dict().items()}
    state.update({f"module.{k}": v for k, v in mapper_state.items() if k.startswith("clip_project.")})
    optimizer = {"state": {0: {"step": torch.tensor(7.0), "exp_avg": torch.zeros(3)}},
                 "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.98), "eps": 1e-6, "weight_decay": 0.2,
                                   "amsgrad": False, "foreach": None, "maximize": False, "params": [0]}]}  # fmt: skip
    torch.save({"step": 7, "state_dict": state, "optimizer": optimizer, "positions": {"0_0": 3}}, tmp_path / "epoch_ft.pt")
    clip = load_clip(open_clip_checkpoint=tmp_path / "metaclip.pt", open_clip_model=clip_cfg)
    return reference_clip, clip, lm, opt_config, state


ALTS = ["Zorblax red square photo", "IMG_2034.jpg", "a <b>blue</b> circle &amp; more", "", "tiny", "Qwerty  shapes\non a  mat"]
FT_CAPTIONS = ["a red square on the left", "blue circle", "a  green &amp; <b>red</b>", "x",
               "two shapes", "stars"]  # fmt: skip


def test_altogether_ft_step_equals_the_original(tokenizer, tmp_path):
    reference_clip, clip, lm, opt_config, state = altogether_release(tokenizer, tmp_path, spare_rows=8)
    model, processor, count = convert_altogether(tmp_path / "epoch_ft.pt", clip, tokenizer=copy.deepcopy(tokenizer),
                                                 text_config=opt_config, prompt_length=8, caption_length=24)  # fmt: skip
    cfg = model.config
    assert (cfg.prompt_length, cfg.prefix_length, cfg.clip_length, cfg.mapper_num_layers, cfg.mapper_num_heads) == (8, 4, 3, 2, 8)
    assert cfg.normalize_image_embeds and count == sum(v.numel() for v in state.values()) - lm.lm_head.weight.numel()
    # <image> takes one of OPT's spare rows: no resize, and the logits keep all 8 spare rows (the original's)
    assert model.language_model.get_input_embeddings().num_embeddings == cfg.lm_vocab_size == opt_config.vocab_size
    assert processor.max_length == 32 and processor.caption_length == model.generation_config.max_new_tokens == 24

    images = [im.convert("RGB").resize((32, 32), resample=3) for im in MANY_IMAGES]  # FT squashes (lines 58-62)
    prompts = [alt if i % 2 == 0 else "" for i, alt in enumerate(ALTS)]  # random.choice([alt, ""]), line 119
    rows = [altogether_ft_example(processor.tokenizer, c, a, 4, 8, 32) for c, a in zip(FT_CAPTIONS, prompts)]
    tokens, attention, masks = (torch.stack(x) for x in zip(*rows))
    with torch.no_grad():
        feats = F.normalize(reference_clip.encode_image(processor(images=images)["pixel_values"]), dim=-1)
        prefix = original_mapper(state_dict_without(state, "module."), feats, 4, 3)
        expected = altogether_ft_loss(lm, prefix, tokens, attention, masks, 24)
        # the original feeds raw alt-texts; a converted processor does too (no HTML or whitespace clean-up)
        batch = processor(images=images, alt_text=prompts, captions=FT_CAPTIONS)
        got = model(**batch)
    assert torch.equal(batch["input_ids"][:, 4:12], tokens[:, :8])
    torch.testing.assert_close(got.loss, expected, atol=1e-5, rtol=1e-5)

    # a caption that fills the 24-token budget exactly (23 tokens + </s>) or more: the original's all-zero masks
    # train nothing on it; ours keeps the exact fit whole and cuts a longer one to the budget without </s>
    exact = "a big  green triangle &amp; <b>more</b>"
    assert len(processor.tokenizer.encode(exact, add_special_tokens=False)) == 23
    assert altogether_ft_example(processor.tokenizer, exact, "", 4, 8, 32)[2].sum() == 0
    assert processor(images=images[:1], alt_text=[""], captions=[exact])["labels"][0, -1] == processor.tokenizer.eos_token_id
    long = " ".join(["a red square"] * 20)
    _, attention_long, mask_long = altogether_ft_example(processor.tokenizer, long, "", 4, 8, 32)
    assert attention_long.sum() == 0 and mask_long.sum() == 0
    labels = processor(images=images[:1], alt_text=[""], captions=[long])["labels"][0]
    assert (labels >= 0).sum() == 24 and processor.tokenizer.eos_token_id not in labels.tolist()


def test_altogether_infer_path_equals_the_original(tokenizer, tmp_path):
    """Sampling with the same seed gives the same tokens. No spare rows here: with them the converted model never
    samples `<image>` (it lives in OPT's first spare row), which the original could, with a random LM's odds."""
    reference_clip, clip, lm, opt_config, state = altogether_release(tokenizer, tmp_path, spare_rows=0)
    model, processor, _ = convert_altogether(tmp_path / "epoch_ft.pt", clip, tokenizer=copy.deepcopy(tokenizer),
                                             text_config=opt_config, prompt_length=8, caption_length=24)  # fmt: skip
    assert model.config.lm_vocab_size == opt_config.vocab_size < len(processor.tokenizer)  # <image> row: no logits
    gen = model.generation_config
    assert (gen.do_sample, gen.temperature, gen.top_p, gen.top_k, gen.max_new_tokens) == (True, 0.2, 0.7, 50, 24)
    alt_lists = [[a, a] for a in ALTS]  # one distinct text each: the original's set() order cannot matter
    prompts = ["; ".join(set(texts)) for texts in alt_lists]
    images = MANY_IMAGES
    with torch.no_grad():
        feats = F.normalize(reference_clip.encode_image(processor(images=images)["pixel_values"]), dim=-1)
        prefix = original_mapper(state_dict_without(state, "module."), feats, 4, 3)
        torch.manual_seed(123)
        expected = altogether_infer(lm, prefix, processor.tokenizer, prompts, 8, 24)
        torch.manual_seed(123)
        got = model.generate(**processor(images=images, alt_text=alt_lists))
    assert got[:, 12:].tolist() == expected.tolist()
    # the original writes `decode(skip_special_tokens=True)` with newlines replaced (train_altogether.py 183-190)
    texts = [t.replace("\n", " ") for t in processor.tokenizer.batch_decode(expected, skip_special_tokens=True)]
    assert processor.batch_decode(got) == [t.strip() for t in texts]

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
def bart_layout_tokenizer(texts: list[str]):
    """A byte-level BPE with bart-large's special-token ids (<s>=0, <pad>=1, </s>=2, <unk>=3): the original's
    label trick (model.py lines 63-64) only works with pad id 1."""
    import tempfile

    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartTokenizer

    bpe = ByteLevelBPETokenizer(add_prefix_space=True)
    bpe.train_from_iterator(texts, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                            show_progress=False)  # fmt: skip
    folder = tempfile.mkdtemp()
    bpe.save_model(folder)
    tokenizer = BartTokenizer(f"{folder}/vocab.json", f"{folder}/merges.txt")
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    return tokenizer


def lightning_1x_checkpoint(path, state_dict: dict) -> None:
    """A `.ckpt` shaped like PyTorch Lightning 1.3/1.4's (what the release was trained with): the state dict plus
    optimizer / scheduler states, hyper-parameters as an AttributeDict and callback states keyed by the callback
    CLASS. Lightning is not installed here, so stand-in classes with Lightning's module paths are pickled, and
    removed again so that loading cannot import them."""
    import sys
    import types

    made = []

    def lightning_class(module: str, name: str, base=object):
        for i in range(1, module.count(".") + 2):
            part = ".".join(module.split(".")[:i])
            if part not in sys.modules:
                sys.modules[part] = types.ModuleType(part)
                made.append(part)
        cls = type(name, (base,), {"__module__": module})
        setattr(sys.modules[module], name, cls)
        return cls

    try:
        checkpoint_cls = lightning_class("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")
        attribute_dict = lightning_class("pytorch_lightning.utilities.parsing", "AttributeDict", dict)
        torch.save({
            "epoch": 5, "global_step": 22000, "pytorch-lightning_version": "1.3.8", "state_dict": state_dict,
            "callbacks": {checkpoint_cls: {"monitor": "vloss", "best_model_score": torch.tensor(1.93),
                                           "best_model_path": "lightning_logs/version_0/checkpoints/-epoch=05-vloss=1.930.ckpt"}},
            "optimizer_states": [{"state": {0: {"step": 22000, "exp_avg": torch.zeros(4)}},
                                  "param_groups": [{"lr": 3e-4, "betas": (0.9, 0.999), "eps": 1e-8, "params": [0]}]}],
            "lr_schedulers": [{"T_max": 100000, "eta_min": 0, "base_lrs": [3e-4], "last_epoch": 22000}],
            "hparams_name": "args",
            "hyper_parameters": attribute_dict(clip_model="ViT-B/16", topk=10, maxlen_enc=128, maxlen_dec=32, lrate=3e-4),
        }, path)  # fmt: skip
    finally:
        for name in made:
            del sys.modules[name]


@pytest.fixture(scope="module")
def antarctic_release(tmp_path_factory):
    from hf_captioners.toyworld.tiny_antarctic import tiny_config, toy_texts

    root = tmp_path_factory.mktemp("antarctic_release")
    perceiver, clip_cfg = tiny_open_clip(16, seed=7)
    texts = toy_texts(40)
    bart_tok = bart_layout_tokenizer(texts + [" | ".join(texts[i : i + 4]) for i in range(0, len(texts), 4)])
    bart_config = tiny_config(bart_tok, bart_tok).bart_config
    bart_config.forced_bos_token_id = None
    torch.manual_seed(8)
    bart = BartForConditionalGeneration(bart_config).eval()
    bart.load_state_dict(randomize(bart.state_dict(), 0.1, seed=8), strict=False)
    with torch.no_grad():
        bart.final_logits_bias[0, bart_tok.eos_token_id] = 3.0  # some candidates end before max_length
    bart.tie_weights()
    state = {f"perceiver.{k}": v for k, v in perceiver.state_dict().items()}
    state.update({f"model.{k}": v for k, v in bart.state_dict().items()})
    ckpt = root / "-epoch=05-vloss=1.930.ckpt"
    lightning_1x_checkpoint(ckpt, state)
    entries = ["red", "blue", "circle", "square", "a red", "blue circle", "on the", "the left", "green", "big", "star",
               "small", "triangle", "yellow", "at the"]  # fmt: skip
    with torch.no_grad():
        emb = F.normalize(perceiver.encode_text(open_clip.tokenize(entries)), dim=-1).numpy().astype(np.float32)
    (root / "postcache.txt").write_text("".join(e + "\n" for e in entries))
    np.save(root / "postcache.npy", emb)
    return {"root": root, "ckpt": ckpt, "perceiver": perceiver, "clip_cfg": clip_cfg, "bart": bart,
            "bart_tok": bart_tok, "bart_config": bart_config, "entries": entries, "state": state}  # fmt: skip


def antarctic_tables(perceiver, cache_emb: torch.Tensor, entries: list[str], pixels, topk: int) -> list[str]:
    """utils.py `build_table` (first commit, lines 31-49): L2-normalised `encode_image`, softmax(100 x cosine) over
    the cache, top-k entries in descending order, each followed by ' | '."""
    x = perceiver.encode_image(pixels).float()
    x = x / x.norm(dim=-1, keepdim=True)
    similarity = (100.0 * x @ cache_emb.T).softmax(dim=-1)
    return ["".join(entries[int(i)] + " | " for i in row.topk(topk).indices) for row in similarity]


def antarctic_loss(bart, tokenizer, tables: list[str], captions: list[str]):
    """model.py `compute_loss` (first commit, lines 39-75): tables padded to 128 tokens, captions to 32; the decoder
    reads `<s> caption </s>` and predicts it shifted left by one (labels -101 * (1 - mask[:, 1:]) + ids[:, 1:],
    i.e. -100 at pads since pad id is 1)."""
    enc = tokenizer(tables, padding="max_length", truncation=True, max_length=128, return_tensors="pt")
    dec = tokenizer(captions, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
    labels = -100 * torch.ones((len(tables), dec.input_ids.shape[-1]), dtype=torch.long)
    labels[:, :-1] = -101 * (1 - dec.attention_mask[:, 1:]) + dec.input_ids[:, 1:]
    return bart(input_ids=enc.input_ids, attention_mask=enc.attention_mask, decoder_input_ids=dec.input_ids,
                decoder_attention_mask=dec.attention_mask, labels=labels).loss  # fmt: skip


def antarctic_sample(bart, tokenizer, perceiver, table: str, image: torch.Tensor) -> tuple[list[str], str]:
    """utils.py `generate` + `clip_rescoring` (first commit, lines 52-98) with sampler.py's defaults (lines 24-26):
    the table encoded whole (no truncation), `generate(do_sample=False, num_beams=3, num_return_sequences=3)`, every
    other setting from facebook/bart-large's config under transformers 4.9 -- early stopping, no repeated
    trigrams, max_length 20 counting the decoder start, EOS forced at the end, no forced <s> (added to the Hub
    config in 2022) -- candidates decoded with special tokens skipped, the one whose normalised `encode_text`
    has the highest cosine with the image wins."""
    inputs = tokenizer.encode(table, return_tensors="pt")
    out = bart.generate(inputs, do_sample=False, num_beams=3, num_return_sequences=3, early_stopping=True,
                        no_repeat_ngram_size=3, max_length=20, min_length=0, length_penalty=1.0,
                        forced_bos_token_id=None, forced_eos_token_id=2, decoder_start_token_id=2)  # fmt: skip
    candidates = [tokenizer.decode(seq, skip_special_tokens=True) for seq in out]
    text = perceiver.encode_text(open_clip.tokenize(candidates)).float()
    text = text / text.norm(dim=-1, keepdim=True)
    return candidates, candidates[int((100.0 * image[None] @ text.T).softmax(dim=-1)[0].topk(1).indices[0])]


def test_antarctic_lightning_checkpoint_equals_the_original_chain(antarctic_release, tmp_path):
    """Checked locally against the first commit's own model.py / utils.py under transformers 4.9 (tables, loss,
    the three beams in order and the re-rank choice were all identical); here against its re-statement."""
    r = antarctic_release
    # facebook/bart-large's config.json of 2021 carried beam defaults (num_beams 4, early stopping, no repeated
    # trigrams) that transformers 5 no longer takes from a model config: the converter must cope
    config_2021 = copy.deepcopy(r["bart_config"])
    config_2021.early_stopping, config_2021.no_repeat_ngram_size, config_2021.num_beams = True, 3, 4
    model, processor, count = convert_antarctic(
        r["ckpt"], r["root"] / "postcache.txt", r["root"] / "postcache.npy", bart_tokenizer=r["bart_tok"],
        clip_model_config=r["clip_cfg"], bart_config=config_2021, out_dir=tmp_path / "out",
    )  # fmt: skip
    bart_values = sum(p.numel() for p in r["bart"].parameters()) + r["bart"].final_logits_bias.numel()  # + buffer
    assert count == sum(p.numel() for p in r["perceiver"].parameters()) + bart_values
    assert model.cache.entries == r["entries"] and model.config.table_top_k == 10
    gen = model.generation_config
    assert (gen.num_beams, gen.num_return_sequences, gen.max_length, gen.no_repeat_ngram_size, gen.early_stopping,
            gen.forced_bos_token_id, gen.forced_eos_token_id) == (3, 3, 20, 3, True, None, 2)  # fmt: skip
    assert processor.decoder_layout == "original"
    perceiver, bart, tok = r["perceiver"], r["bart"], r["bart_tok"]
    captions = MANY_CAPTIONS
    pixels = processor(images=MANY_IMAGES)["pixel_values"]
    with torch.no_grad():
        cache = torch.from_numpy(np.load(r["root"] / "postcache.npy"))
        tables = antarctic_tables(perceiver, cache, r["entries"], pixels, 10)
        image = model.get_image_features(pixels)
        assert AntarcticRetriever.from_model(model, processor).retrieve(image)[1] == tables
        torch.testing.assert_close(image, F.normalize(perceiver.encode_image(pixels), dim=-1), atol=1e-5, rtol=0)

        got = model(**processor(tables=tables, text_target=captions))
        torch.testing.assert_close(got.loss, antarctic_loss(bart, tok, tables, captions), atol=1e-5, rtol=1e-5)

        results = model_pipeline(model, processor).caption_pixels(pixels, return_candidates=True)
        lengths = set()
        for i, result in enumerate(results):
            candidates, chosen = antarctic_sample(bart, tok, perceiver, tables[i], image[i])
            assert result["candidates"] == [c.strip() for c in candidates], i
            assert result["caption"] == chosen.strip(), i
            lengths |= {len(tok.encode(c)) for c in candidates}
    assert len(lengths) > 1  # beams of different lengths (some ended before max_length) were compared


def test_lightning_checkpoint_loads_weights_only(antarctic_release, tmp_path):
    from hf_captioners.convert.checkpoints import load_checkpoint, load_state_dict

    r = antarctic_release
    checkpoint = load_checkpoint(r["ckpt"])
    assert checkpoint["hyper_parameters"]["topk"] == 10 and checkpoint["global_step"] == 22000
    (callback_state,) = checkpoint["callbacks"].values()
    assert callback_state["monitor"] == "vloss"
    assert set(load_state_dict(r["ckpt"])) == set(r["state"])
    # anything that is not an allow-listed framework class is still refused, naming the global
    import os

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"state_dict": {}, "hook": Exploit()}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="refused to load.*system"):
        load_checkpoint(tmp_path / "evil.ckpt")


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
    assert model_pipeline(loaded, loaded_processor).caption_pixels(pixels, **kwargs) == model_pipeline(model, processor).caption_pixels(pixels, **kwargs)


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
