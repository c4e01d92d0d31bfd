"""Files the two remote-code folders must each carry are copies on purpose (transformers' `check_copies` idea):
a first line `# Copied from hf_captioners.<module> with A->B` says which file, and this test keeps them equal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src"
MARKER = re.compile(r"^# Copied from (hf_captioners(?:\.\w+)+)(?: with (.+))?$")


def _copies() -> list[Path]:
    return sorted(p for p in (ROOT / "hf_captioners").rglob("*.py") if p.read_text().startswith("# Copied from "))


def _expected(marker_line: str) -> str:
    match = MARKER.match(marker_line)
    assert match, f"malformed marker {marker_line!r}"
    source = ROOT.joinpath(*match.group(1).split(".")).with_suffix(".py").read_text()
    for pair in (match.group(2) or "").split(","):
        if pair.strip():
            old, new = (part.strip() for part in pair.split("->"))
            source = source.replace(old, new).replace(old.lower(), new.lower())
    return source


def test_there_are_copies():
    assert _copies(), "expected at least the image processor copied into antarctic/"


@pytest.mark.parametrize("path", _copies(), ids=lambda p: str(p.relative_to(ROOT)))
def test_copy_matches_its_source(path):
    first, rest = path.read_text().split("\n", 1)
    assert rest == _expected(first), f"{path} drifted from its source: re-copy it ({first})"


def test_no_symlinks_in_the_model_folders():
    for folder in ("altogether", "antarctic"):
        links = [p.name for p in (ROOT / "hf_captioners" / folder).iterdir() if p.is_symlink()]
        assert not links, f"{folder}/ has symlinks {links}: remote code and Windows checkouts need real files"
