"""`pipeline("image-to-text", model=dir, trust_remote_code=True)` for Altogether checkpoints.

v5 redirects the built-in image-to-text task to image-text-to-text, which needs a text argument; this
pipeline (shipped in the checkpoint via `config.custom_pipelines`) keeps the classic call shape with an
optional alt-text: `pipe(image, alt_text="...")` -> `[{"generated_text": caption}]`.
"""

from __future__ import annotations

from transformers import Pipeline

__all__ = ["AltogetherImageToTextPipeline"]


class AltogetherImageToTextPipeline(Pipeline):
    """Images (+ optional alt-texts) -> captions. A list of images gives a list of results; `alt_text` is then
    a list with one entry (str, list of str, or None) per image."""

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _pipeline_calls_generate = True

    def __call__(self, images, alt_text=None, **kwargs):
        if isinstance(images, (list, tuple)):
            if alt_text is None:
                alt_text = [None] * len(images)
            if not isinstance(alt_text, (list, tuple)) or len(alt_text) != len(images):
                raise ValueError(f"alt_text must be a list with one entry per image ({len(images)})")
            inputs = [{"image": image, "alt_text": alt} for image, alt in zip(images, alt_text)]
            return super().__call__(inputs, **kwargs)
        return super().__call__({"image": images, "alt_text": alt_text}, **kwargs)

    def _sanitize_parameters(self, max_new_tokens=None, generate_kwargs=None, skip_special_tokens=None, **kwargs):
        forward_kwargs = {"generate_kwargs": dict(generate_kwargs or {})}
        if max_new_tokens is not None:
            forward_kwargs["generate_kwargs"]["max_new_tokens"] = max_new_tokens
        forward_kwargs["generate_kwargs"].update(kwargs)
        postprocess_params = {}
        if skip_special_tokens is not None:
            postprocess_params["skip_special_tokens"] = skip_special_tokens
        return {}, forward_kwargs, postprocess_params

    def preprocess(self, inputs):
        model_inputs = self.processor(images=inputs["image"], alt_text=inputs["alt_text"], return_tensors="pt")
        return model_inputs.to(dtype=self.dtype) if self.dtype is not None else model_inputs

    def _forward(self, model_inputs, generate_kwargs=None):
        generate_kwargs = self._prepare_generate_kwargs(dict(generate_kwargs or {}), return_dict_in_generate=False)
        return {"sequences": self.model.generate(**model_inputs, **generate_kwargs)}

    def postprocess(self, model_outputs, skip_special_tokens=True):
        captions = self.processor.post_process_image_text_to_text(
            model_outputs["sequences"], skip_special_tokens=skip_special_tokens
        )
        return [{"generated_text": caption} for caption in captions]
