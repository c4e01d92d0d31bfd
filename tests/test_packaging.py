"""The wheel's package list is written out (so the top-level card templates can ship as a data package): it must
name every package under src/, and the templates must resolve through it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def test_every_package_under_src_is_listed_and_the_card_templates_ship():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(ROOT / "src").parts) for p in (ROOT / "src").rglob("__init__.py")}
    assert set(config["packages"]) == found | {"hf_captioners.model_cards"}
    assert config["package-dir"]["hf_captioners.model_cards"] == "model_cards"

    from hf_captioners.hub.cards import template_path
    from hf_captioners.registry import CAPTIONERS

    for model_type in CAPTIONERS:
        assert template_path(model_type).read_text().startswith("---"), model_type


def test_registry_names_files_that_exist_and_adapters_that_import():
    from hf_captioners.registry import CAPTIONERS

    for spec in CAPTIONERS.values():
        missing = [name for name in spec.remote_code if not (spec.folder / name).is_file()]
        assert not missing, f"{spec.model_type}: {missing}"
        assert callable(spec.adapter_class())
        assert (ROOT / "model_cards" / spec.card_template).is_file()
