"""`pipeline("image-to-text", model=dir, trust_remote_code=True)` for antarctic-captions.

Shipped through `config.custom_pipelines`, which transformers consults before redirecting "image-to-text"
to "image-text-to-text". The pipeline is the one place where the chain runs: CLIP's image tower embeds,
the retriever hands BART its tables, BART writes candidates, the retriever's CLIP text tower re-ranks them.
Re-captioning, training evaluation and the web page call `caption_pixels` too. Lists of images are captioned
`batch_size` at a time in one `caption_pixels` call (everything batched), not one image at a time.
"""

from __future__ import annotations

import torch
from transformers import Pipeline

from .retrieval_antarctic import AntarcticRetriever

__all__ = ["AntarcticCaptionPipeline"]


class AntarcticCaptionPipeline(Pipeline):
    """Call with images (one or a list) and optionally `top_k=` (table entries), `num_candidates=`,
    `generate_kwargs=` (e.g. `{"do_sample": True, "top_p": 0.9}`), `max_new_tokens=`, `return_candidates=`,
    `cache=` (an `AntarcticCache` to use from now on), `use_index=` (its faiss index or exact search),
    `batch_size=`; any other keyword is a `generate`
    argument, as in transformers' own generation pipelines. `alt_text=` is accepted and ignored:
    antarctic-captions reads pixels only, and evaluation scripts pass alt-texts to every captioner."""

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _pipeline_calls_generate = False
    default_batch_size = 32

    def __init__(self, *args, **kwargs):
        self.retriever, self._initial_cache = None, None  # `cache=` given to the constructor arrives before the model
        super().__init__(*args, **kwargs)
        self.retriever = AntarcticRetriever.from_model(self.model, self.processor, cache=self._initial_cache)

    def _sanitize_parameters(self, top_k=None, num_candidates=None, generate_kwargs=None, max_new_tokens=None,
                             return_candidates=None, alt_text=None, cache=None, use_index=None, **kwargs):
        if cache is not None:
            if self.retriever is None:
                self._initial_cache = cache
            else:
                self.retriever.set_cache(cache)
        forward = {}
        if top_k is not None:
            forward["top_k"] = top_k
        if num_candidates is not None:
            forward["num_candidates"] = num_candidates
        if use_index is not None:
            forward["use_index"] = use_index
        generate = {**dict(generate_kwargs or {}), **kwargs}
        if max_new_tokens is not None:
            generate["max_new_tokens"] = max_new_tokens
        if generate:
            forward["generate_kwargs"] = generate
        post = {}
        if return_candidates is not None:
            post["return_candidates"] = return_candidates
        return {}, forward, post

    def __call__(self, images, batch_size: int | None = None, **kwargs):
        preprocess_params, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        forward_params = {**self._forward_params, **forward_params}
        postprocess_params = {**self._postprocess_params, **postprocess_params}
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        if not items:
            return []
        step = batch_size or self._batch_size or self.default_batch_size
        outputs = []
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            outputs.extend(self.run_single(chunk, preprocess_params, forward_params, postprocess_params))
        return outputs[0] if single else outputs

    def preprocess(self, images):
        return dict(self.processor.preprocess_images(images))

    def _forward(self, model_inputs, top_k=None, num_candidates=None, generate_kwargs=None, use_index=None):
        return {"results": self.caption_pixels(model_inputs["pixel_values"], top_k=top_k, num_candidates=num_candidates,
                                               generate_kwargs=generate_kwargs, return_candidates=True,
                                               use_index=use_index)}

    def postprocess(self, model_outputs, return_candidates: bool = False):
        out = []
        for result in model_outputs["results"]:
            item = [{"generated_text": result["caption"]}]
            if return_candidates:
                item[0].update(candidates=result["candidates"], scores=result["scores"], table=result["table"])
            out.append(item)
        return out

    @torch.no_grad()
    def caption_pixels(self, pixel_values: torch.Tensor, top_k: int | None = None, num_candidates: int | None = None,
                       generate_kwargs: dict | None = None, return_candidates: bool = False, cache=None,
                       use_index: bool | None = None, max_sequences_per_generate: int = 4096,
                       rerank_batch_size: int = 1024):
        """Images -> captions: retrieve the top-k table, let BART write candidates, keep CLIP's favourite.

        `num_candidates` sets `num_return_sequences` (beam search widens to match; pass
        `generate_kwargs={"do_sample": True, "top_p": 0.9, "temperature": 0.7}` to sample up to 1000).
        Images are generated in groups of at most `max_sequences_per_generate` candidate sequences. `cache`:
        another cache for this call only. `use_index`: search the cache's faiss index (True) or its raw vectors
        (False); by default exact, unless the cache keeps its vectors in the index only. Returns a list of captions, or with `return_candidates` a list of
        dicts with the caption, the table and its entries and scores, the candidates and their CLIP scores.
        """
        model = self.model
        retriever = self.retriever if cache is None else self.retriever.with_cache(cache)
        image_embeds = model.get_image_features(pixel_values)
        entries, tables, entry_scores = retriever.retrieve(image_embeds, top_k=top_k, use_index=use_index)
        gen = dict(generate_kwargs or {})
        if num_candidates is not None:
            gen["num_return_sequences"] = num_candidates
        n = gen.setdefault("num_return_sequences", model.generation_config.num_return_sequences or 1)
        if gen.get("do_sample"):
            gen.setdefault("num_beams", 1)
        elif n > gen.get("num_beams", model.generation_config.num_beams or 1):
            gen["num_beams"] = n
        if "max_new_tokens" in gen:
            gen.setdefault("max_length", None)  # the saved 32-token default yields to an explicit max_new_tokens
        group = max(1, max_sequences_per_generate // n)

        candidates: list[str] = []
        for start in range(0, len(tables), group):
            inputs = retriever.generator_inputs(tables[start : start + group]).to(model.device)
            sequences = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], **gen)
            candidates.extend(self.processor.batch_decode(sequences))
        scores = retriever.score(image_embeds, candidates, batch_size=rerank_batch_size)
        best = scores.argmax(dim=1).tolist()
        captions = [candidates[i * n + j] for i, j in enumerate(best)]
        if not return_candidates:
            return captions
        return [
            {"caption": captions[i], "table": tables[i], "entries": entries[i], "entry_scores": entry_scores[i].tolist(),
             "candidates": candidates[i * n : (i + 1) * n], "scores": scores[i].tolist()}
            for i in range(len(tables))
        ]
