"""Shared fixtures. Tests never touch the network: the Makefile sets HF_*_OFFLINE and a temporary HF_HOME."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_toyworld(tmp_path_factory):
    """A small toy world in every format (64 train, 16 eval, 32 backbone images, 16 per shard)."""
    from hf_captioners.toyworld import generate_toyworld

    root = tmp_path_factory.mktemp("toyworld")
    generate_toyworld(root, splits={"train": 64, "eval": 16, "backbone": 32}, shard_size=16, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def altogether_dir(tmp_path_factory):
    """A saved tiny Altogether that decodes greedily, so engines' outputs can be compared byte for byte."""
    from hf_captioners.toyworld.tiny_altogether import tiny_altogether

    model, processor = tiny_altogether(image_size=32)
    model.generation_config.max_new_tokens = 6
    model.generation_config.update(do_sample=False, temperature=1.0, top_p=1.0)
    path = tmp_path_factory.mktemp("altogether")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
