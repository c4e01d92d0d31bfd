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
