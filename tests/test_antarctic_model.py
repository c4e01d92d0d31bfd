"""antarctic-captions model: tables, retrieval, re-ranking, training/generation start, batching, files, pipeline."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_captioners.antarctic import (
    AntarcticCache,
    AntarcticForConditionalGeneration,
    AntarcticRetriever,  # noqa: E402
    CacheError,
)
from hf_captioners.antarctic.image_utils import ImageInputError
from hf_captioners.registry import model_pipeline  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from isolation import run_without_package  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    from hf_captioners.toyworld import ToyWorldConfig, generate_example
    from hf_captioners.toyworld.tiny_antarctic import tiny_antarctic

    model, processor, texts = tiny_antarctic()
    cache = AntarcticCache.from_corpus(texts, AntarcticRetriever(None, model.clip, processor).encode, num_unigrams=40,
                                       num_bigrams=40, progress=False)
    model.set_cache(cache)
    images = [Image.open(io.BytesIO(generate_example(ToyWorldConfig(), "eval", i).image_bytes)) for i in range(5)]
    return model, processor, images


def pixels(processor, images):
    return processor(images=images)["pixel_values"]


def test_tables_and_topk_order_equal_a_reference_restatement(tiny):
    """utils.py `build_table` (antarctic-captions first commit, lines 31-49): normalised image embedding against
    the cache, top-k by cosine (its softmax keeps the order), each entry followed by ' | '."""
    model, processor, images = tiny
    px = pixels(processor, images)
    retriever = AntarcticRetriever.from_model(model, processor)
    image_embeds = model.get_image_features(px)
    entries, tables, scores = retriever.retrieve(image_embeds, top_k=4)
    cache = model.cache
    reference = torch.nn.functional.normalize(image_embeds, dim=1) @ cache.embeddings.T
    ref_scores, ref_ids = reference.topk(4, dim=1)
    assert entries == [[cache.entries[i] for i in row] for row in ref_ids.tolist()]
    assert torch.allclose(scores, ref_scores, atol=1e-6)
    table = tables[0]
    assert table == f"{entries[0][0]} | {entries[0][1]} | {entries[0][2]} | {entries[0][3]} | "
    assert model_pipeline(model, processor).caption_pixels(px[:1], top_k=4, return_candidates=True)[0]["table"] == table
    assert len(retriever.retrieve(image_embeds)[0][0]) == model.config.table_top_k == 10
    inputs = retriever(image_embeds, top_k=4)  # the generator's inputs, as RagRetriever hands them over
    assert processor.batch_decode(inputs["input_ids"])[0] == table.strip()


def test_reranking_picks_the_clip_argmax_of_the_candidates(tiny):
    """utils.py `clip_rescoring` (first commit, lines 52-62): normalised `encode_text` of every candidate, the
    highest cosine with the image wins; beam 3 / return 3 are sampler.py's defaults (lines 24-26)."""
    model, processor, images = tiny
    px = pixels(processor, images[:3])
    results = model_pipeline(model, processor).caption_pixels(px, return_candidates=True, generate_kwargs={"max_new_tokens": 6})
    image_embeds = model.get_image_features(px)
    for result, image in zip(results, image_embeds):
        tokens = processor.clip_tokenizer(result["candidates"], padding=True, return_tensors="pt")
        text = torch.nn.functional.normalize(model.clip.get_text_features(**tokens).pooler_output, dim=1)
        cosines = text @ torch.nn.functional.normalize(image, dim=0)
        assert torch.allclose(torch.tensor(result["scores"]), cosines, atol=1e-5)
        assert result["caption"] == result["candidates"][int(cosines.argmax())]
        assert len(result["candidates"]) == 3  # beam 3, return 3


def test_custom_entry_with_distinctive_embedding_enters_the_table(tiny):
    model, processor, images = tiny
    px = pixels(processor, images[:2])
    cache = model.cache.copy()
    cache.text_encoder = AntarcticRetriever(None, model.clip, processor).encode
    before = len(cache)
    cache.add(["geoff hinton"], embeddings=model.get_image_features(px[:1]))
    cache.add(["ada lovelace"])  # embedded by the CLIP text tower, only the new entry
    assert len(cache) == before + 2
    retriever = AntarcticRetriever.from_model(model, processor, cache=cache)
    entries, tables, _ = retriever.retrieve(model.get_image_features(px))
    assert entries[0][0] == "geoff hinton"
    assert "geoff hinton" in tables[0]
    assert torch.allclose(cache.embeddings[-1], retriever.encode(["ada lovelace"])[0], atol=1e-6)
    assert model.cache is not cache  # the model's own cache is untouched
    for target in (model, retriever):
        with pytest.raises(CacheError, match="dim"):
            target.set_cache(AntarcticCache(["a"], torch.ones(1, 3)))


def test_training_decoder_start_matches_generation(tiny):
    model, processor, images = tiny
    tables = AntarcticRetriever.from_model(model, processor).retrieve(model.get_image_features(pixels(processor, images[:2])))[1]
    batch = processor(tables=tables, text_target=["A red circle.", "a star"])
    assert (batch["labels"][:, 0] == processor.tokenizer.bos_token_id).all()
    out = model(**batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    from transformers.models.bart.modeling_bart import shift_tokens_right

    cfg = model.config.bart_config
    decoder_inputs = shift_tokens_right(batch["labels"], cfg.pad_token_id, cfg.decoder_start_token_id)
    generated = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               num_beams=1, num_return_sequences=1, max_new_tokens=4)
    assert torch.equal(generated[:, :2], decoder_inputs[:, :2])


def test_batched_caption_equals_one_image_at_a_time(tiny):
    model, processor, images = tiny
    px = pixels(processor, images)
    kwargs = {"generate_kwargs": {"max_new_tokens": 8}}
    batched = model_pipeline(model, processor).caption_pixels(px, **kwargs)
    single = [model_pipeline(model, processor).caption_pixels(px[i : i + 1], **kwargs)[0] for i in range(len(images))]
    assert batched == single
    grouped = model_pipeline(model, processor).caption_pixels(px, max_sequences_per_generate=6, **kwargs)  # 2 images per generate
    assert grouped == batched


def _stock_bart(model, attn_implementation: str):
    """A plain BartForConditionalGeneration with the model's BART weights: stock cross-attention and caches."""
    from transformers import BartForConditionalGeneration

    bart = BartForConditionalGeneration(model.bart.config)
    bart.load_state_dict(model.bart.state_dict())
    bart.set_attn_implementation(attn_implementation)
    return bart.eval()


@torch.no_grad()
@pytest.mark.parametrize(("attn_implementation", "folded"), [("sdpa", True), ("eager", True), ("sdpa", False)])
def test_generation_sharing_each_tables_encoder_output_equals_stock_bart(tiny, attn_implementation, folded, monkeypatch):
    """The model keeps one encoder output (and one cross-attention cache) per table and lets the table's beams
    or candidates attend to it as extra query positions, and reorders only the self-attention cache between
    beam steps; stock BART (same weights) repeats the encoder output per sequence and reorders both caches.
    Sequences, scores, sampled candidates and cross-attention weights must be the same, for padded tables of
    different lengths. Attention kernels that do not fold (`folded=False`: flash attention's) get the encoder
    output repeated per sequence inside the layer instead, with the same results."""
    from hf_captioners.antarctic.modeling_antarctic import ImageSharedCrossAttention

    if not folded:
        monkeypatch.setattr(ImageSharedCrossAttention, "folds", ())
    model, processor, images = tiny
    tables = AntarcticRetriever.from_model(model, processor).retrieve(model.get_image_features(pixels(processor, images)))[1]
    tables[1] = tables[1].split(",")[0]  # a short table: padding in the batch
    batch = processor(tables=tables)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    stock_bart = _stock_bart(model, attn_implementation)
    model.set_attn_implementation(attn_implementation)
    try:
        beam = {"num_beams": 4, "num_return_sequences": 4, "max_new_tokens": 12, "min_new_tokens": 12,
                "output_scores": True, "return_dict_in_generate": True}
        ours = model.generate(**inputs, **beam)
        stock = stock_bart.generate(**inputs, generation_config=model.generation_config, **beam)
        assert torch.equal(ours.sequences, stock.sequences)
        torch.testing.assert_close(ours.sequences_scores, stock.sequences_scores, rtol=1e-6, atol=1e-6)
        moved = [len(set(row[row >= 0].tolist())) > 1 for row in ours.beam_indices]  # a beam continued from another
        assert any(moved)
        cross = ours.past_key_values.cross_attention_cache.layers[0].keys
        assert cross.shape[0] == (1 if folded else 4) * len(tables)
        assert stock.past_key_values.cross_attention_cache.layers[0].keys.shape[0] == 4 * len(tables)

        sample = {"do_sample": True, "num_beams": 1, "num_return_sequences": 6, "top_p": 0.9, "max_new_tokens": 8}
        torch.manual_seed(0)
        ours = model.generate(**inputs, **sample)
        torch.manual_seed(0)
        assert torch.equal(ours, stock_bart.generate(**inputs, generation_config=model.generation_config, **sample))

        if attn_implementation == "eager":  # attention weights come back per sequence, as stock BART's
            greedy = {"num_beams": 2, "num_return_sequences": 2, "max_new_tokens": 4, "return_dict_in_generate": True,
                      "output_attentions": True}
            ours = model.generate(**inputs, **greedy)
            stock = stock_bart.generate(**inputs, generation_config=model.generation_config, **greedy)
            for step_ours, step_stock in zip(ours.cross_attentions, stock.cross_attentions, strict=True):
                for a, b in zip(step_ours, step_stock, strict=True):
                    assert a.shape == b.shape
                    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    finally:
        model.set_attn_implementation("sdpa")


def test_text_embeddings_do_not_depend_on_the_batch_they_are_tokenized_in(tiny):
    """Candidates are tokenized a batch at a time (so 16,000 of them never sit tokenized at once): the
    embeddings equal those of one batch padded to the longest text, and an empty list gives an empty matrix."""
    model, processor, _ = tiny
    retriever = AntarcticRetriever.from_model(model, processor)
    texts = ["a", "a red square on a blue ground next to a circle", "blue", "two small green circles", "x"] * 3
    whole = retriever.encode(texts, batch_size=len(texts))
    torch.testing.assert_close(retriever.encode(texts, batch_size=2), whole, rtol=1e-5, atol=1e-6)
    assert retriever.encode([]).shape == (0, model.config.projection_dim)


def test_sampling_many_candidates(tiny):
    model, processor, images = tiny
    torch.manual_seed(0)
    results = model_pipeline(model, processor).caption_pixels(pixels(processor, images[:2]), num_candidates=40, return_candidates=True,
                            generate_kwargs={"do_sample": True, "top_p": 0.9, "temperature": 0.7, "max_new_tokens": 5})
    for r in results:
        assert len(r["candidates"]) == len(r["scores"]) == 40
        assert r["caption"] == r["candidates"][int(np.argmax(r["scores"]))]


def test_save_and_autoload_with_cache_and_frozen(tiny, tmp_path):
    from transformers import AutoModel, AutoProcessor

    model, processor, images = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoProcessor"}
    assert config["custom_pipelines"]["image-to-text"]["impl"] == "pipeline_antarctic.AntarcticCaptionPipeline"
    for name in ("entries.txt", "cache.safetensors", "modeling_antarctic.py", "retrieval_antarctic.py",
                 "processing_antarctic.py", "image_utils.py", "pipeline_antarctic.py", "clip_tokenizer"):
        assert (tmp_path / name).exists(), name
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, AntarcticForConditionalGeneration)
    assert not any(p.requires_grad for p in loaded.parameters())
    assert loaded.cache.entries == model.cache.entries
    px = AutoProcessor.from_pretrained(tmp_path)(images=images[:2])["pixel_values"]
    assert torch.equal(px, pixels(processor, images[:2]))
    kwargs = {"generate_kwargs": {"max_new_tokens": 6}}
    assert model_pipeline(loaded, processor).caption_pixels(px, **kwargs) == model_pipeline(model, processor).caption_pixels(px, **kwargs)
    other = AntarcticCache(["only entry", "second"], torch.randn(2, model.config.projection_dim))
    swapped = AutoModel.from_pretrained(tmp_path, cache=other)
    assert swapped.cache is other


def test_remote_code_and_pipeline_in_a_fresh_process_without_the_package(tiny, tmp_path):
    model, processor, images = tiny
    model.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    images[0].save(tmp_path / "a.png")
    script = textwrap.dedent(f"""
        import json
        from PIL import Image
        from transformers import AutoModel, pipeline
        model = AutoModel.from_pretrained({str(tmp_path / "m")!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert len(model.cache) == {len(model.cache)}
        pipe = pipeline("image-to-text", model={str(tmp_path / "m")!r}, trust_remote_code=True)
        image = Image.open({str(tmp_path / "a.png")!r})
        one = pipe(image, alt_text="ignored", generate_kwargs={{"max_new_tokens": 6}})
        many = pipe([image, image.convert("RGBA"), image.convert("P")], top_k=3, num_candidates=2,
                    generate_kwargs={{"max_new_tokens": 6}}, batch_size=2)
        print(json.dumps({{"one": one, "many": many}}))
    """)
    result = run_without_package(script, [], tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(out["one"]) == 1 and isinstance(out["one"][0]["generated_text"], str)
    assert len(out["many"]) == 3 and all(len(item) == 1 and "generated_text" in item[0] for item in out["many"])
    px = pixels(processor, [images[0]])
    assert out["one"][0]["generated_text"] == model_pipeline(model, processor).caption_pixels(px, generate_kwargs={"max_new_tokens": 6})[0]


def test_pipeline_in_process_options(tiny, tmp_path):
    from transformers import pipeline

    model, processor, images = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    pipe = pipeline("image-to-text", model=str(tmp_path), trust_remote_code=True)
    out = pipe(images[:2], top_k=2, return_candidates=True, generate_kwargs={"max_new_tokens": 5})
    assert [len(o[0]["table"].split(" | ")) for o in out] == [3, 3]  # 2 entries + the trailing separator
    # any other keyword is a generate argument, as in Altogether's pipeline and transformers' generation pipelines
    direct = pipe(images[0], min_new_tokens=3, max_new_tokens=3)
    assert direct[0]["generated_text"] == pipe(images[0], generate_kwargs={"min_new_tokens": 3, "max_new_tokens": 3})[0]["generated_text"]
    with pytest.raises(ValueError, match="bogus"):
        pipe(images[0], bogus=1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: b"", "empty image data"),
        (lambda p: b"not an image", "not a readable image"),
        (lambda p: str(p / "missing.png"), "no such file"),
        (lambda p: np.zeros((0, 4, 3), np.uint8), "expected an HxW"),
        (lambda p: 42, "unsupported image type"),
    ],
)
def test_bad_images_raise_errors_naming_the_input(tiny, tmp_path, make, message):
    _, processor, _ = tiny
    with pytest.raises(ImageInputError, match=message):
        processor(images=[Image.new("RGB", (8, 8)), make(tmp_path)])


def test_image_modes_all_become_rgb_pixels(tiny):
    _, processor, _ = tiny
    rgb = Image.new("RGB", (20, 30), (200, 10, 10))
    odd = [rgb.convert("RGBA"), rgb.convert("P"), rgb.convert("CMYK"), rgb.convert("L"), Image.new("I;16", (5, 5), 40000),
           Image.new("RGB", (1, 1)), np.zeros((7, 9), np.uint8)]
    px = processor(images=odd)["pixel_values"]
    assert px.shape == (len(odd), 3, 32, 32) and torch.isfinite(px).all()


def test_from_backbones_reuses_the_given_clip_and_bart(tiny):
    from transformers import BartForConditionalGeneration, CLIPModel

    model, processor, images = tiny
    clip, bart = CLIPModel(model.config.clip_config), BartForConditionalGeneration(model.config.bart_config)
    assembled = AntarcticForConditionalGeneration.from_backbones(clip, bart, cache=model.cache, table_top_k=4)
    assert assembled.clip is clip and assembled.bart is bart and assembled.config.table_top_k == 4
    assert not any(p.requires_grad for p in assembled.parameters())
    assert not any(p.is_meta for p in assembled.parameters())
    out = model_pipeline(assembled.eval(), processor).caption_pixels(pixels(processor, images[:2]), generate_kwargs={"max_new_tokens": 4})
    assert len(out) == 2


def test_cache_index_command_saves_an_index_the_model_loads_and_the_pipeline_selects(tiny, tmp_path, capsys):
    pytest.importorskip("faiss")
    from transformers import AutoModel

    from hf_captioners.commands import main

    model, processor, images = tiny
    model.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    assert main(["cache-index", str(tmp_path / "m"), "--kind", "flat"]) == 0
    assert capsys.readouterr().out.startswith(f"cache-index: flat over {len(model.cache):,} entries")
    loaded = AutoModel.from_pretrained(tmp_path / "m")
    assert loaded.cache.index is not None and loaded.cache.embeddings is not None
    pipe = model_pipeline(loaded, processor)
    px = pixels(processor, images[:2])
    kwargs = {"generate_kwargs": {"max_new_tokens": 5}, "return_candidates": True}
    exact = pipe.caption_pixels(px, use_index=False, **kwargs)
    # a flat index is exact search too: the same tables and captions through faiss (scores to float rounding)
    through_index = pipe.caption_pixels(px, use_index=True, **kwargs)
    for a, b in zip(through_index, exact):
        assert np.allclose(a.pop("entry_scores"), b.pop("entry_scores"), atol=1e-5) and a == b
    assert [o[0]["table"] for o in pipe(images[:2], use_index=True, max_new_tokens=5, return_candidates=True)] == [
        r["table"] for r in exact]
    assert main(["cache-index", str(tmp_path / "nowhere")]) == 2
    dim = model.cache.dim
    assert main(["cache-index", str(tmp_path / "m"), "--kind", "ivf-fastscan-sq8", "--pq-m", str(dim + 1)]) == 2
    assert f"pq_m={dim + 1} sub-quantizers must divide the embedding size {dim}" in capsys.readouterr().err


def test_cache_index_offers_every_index_kind():
    from hf_captioners.antarctic.retrieval_antarctic import INDEX_KINDS
    from hf_captioners.commands.cache_index import KINDS

    assert KINDS == INDEX_KINDS
