"""Run a script in a fresh Python process where `hf_captioners` cannot be imported, as on a machine that
only has transformers: the test that a saved folder really is self-contained remote code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HIDE_PACKAGE = textwrap.dedent(
    """
    import importlib.abc, sys

    class _HideHfCaptioners(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "hf_captioners":
                raise ImportError("hf_captioners is hidden in this process")

    sys.meta_path.insert(0, _HideHfCaptioners())
    try:
        import hf_captioners  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("hf_captioners is still importable: the test would prove nothing")
    """
)


def run_without_package(script: str, args, workdir: Path, env: dict | None = None, timeout: int = 600):
    """Write `script` (after the prelude that hides the package) into `workdir` and run it there."""
    path = Path(workdir) / "fresh_process.py"
    path.write_text(HIDE_PACKAGE + textwrap.dedent(script))
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ.update(HF_HOME=str(Path(workdir) / "hf_home"), HF_HUB_OFFLINE="1", PYTHONNOUSERSITE="1", **(env or {}))
    return subprocess.run([sys.executable, str(path), *map(str, args)], cwd=workdir, env=environ,
                          capture_output=True, text=True, timeout=timeout)
