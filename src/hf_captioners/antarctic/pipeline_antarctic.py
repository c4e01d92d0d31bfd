"""`pipeline("image-to-text", model=dir, trust_remote_code=True)` for antarctic-captions.

Shipped through `config.custom_pipelines`, which transformers consults before redirecting "image-to-text"
to "image-text-to-text". Lists of images are captioned `batch_size` at a time in one `model.caption` call
(retrieval, BART generation and CLIP re-ranking all batched), not one image at a time.
"""

from __future__ import annotations

from transformers import Pipeline

__all__ = ["AntarcticCaptionPipeline"]


class AntarcticCaptionPipeline(Pipeline):
    """Call with images (one or a list) and optionally `top_k=` (table entries), `num_candidates=`,
    `generate_kwargs=` (e.g. `{"do_sample": True, "top_p": 0.9}`), `max_new_tokens=`, `return_candidates=`,
    `cache=` (an `AntarcticCache` to use from now on), `batch_size=`. `alt_text=` is accepted and ignored:
    antarctic-captions reads pixels only, and evaluation scripts pass alt-texts to every captioner."""

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _pipeline_calls_generate = False
    default_batch_size = 32

    def _sanitize_parameters(self, top_k=None, num_candidates=None, generate_kwargs=None, max_new_tokens=None,
                             return_candidates=None, alt_text=None, cache=None, **kwargs):
        if kwargs:
            raise TypeError(f"AntarcticCaptionPipeline: unexpected arguments {sorted(kwargs)}")
        if cache is not None:
            self.model.set_cache(cache)
        forward = {}
        if top_k is not None:
            forward["top_k"] = top_k
        if num_candidates is not None:
            forward["num_candidates"] = num_candidates
        generate = dict(generate_kwargs or {})
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

    def _forward(self, model_inputs, top_k=None, num_candidates=None, generate_kwargs=None):
        if self.model.cache is not None and self.model.cache.text_encoder is None:
            self.model.cache.text_encoder = self.model.text_encoder(self.processor.clip_tokenizer)
        return {"results": self.model.caption(
            model_inputs["pixel_values"], self.processor, top_k=top_k, num_candidates=num_candidates,
            generate_kwargs=generate_kwargs, return_candidates=True,
        )}

    def postprocess(self, model_outputs, return_candidates: bool = False):
        out = []
        for result in model_outputs["results"]:
            item = [{"generated_text": result["caption"]}]
            if return_candidates:
                item[0].update(candidates=result["candidates"], scores=result["scores"], table=result["table"])
            out.append(item)
        return out
