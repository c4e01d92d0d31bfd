"""Push a captioner to the Hugging Face Hub: weights, processor, remote code, pipeline and a rendered card.

`push_to_hub` first stages the exact folder that will be uploaded (`dry_run_dir=` stops there, so what a
push would send can be inspected and tested offline), then `HfApi.create_repo` + `upload_folder`. The folder
is complete on its own: `AutoModel.from_pretrained(repo, trust_remote_code=True)` and the pipelines need
nothing from this package.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from hf_captioners.registry import spec_for

logger = logging.getLogger(__name__)

__all__ = ["push_to_hub", "stage_folder"]

_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
_SKIP = {".git", ".cache", "__pycache__", "README.md"}


def _save_model(model, processor, folder: Path) -> None:
    if processor is None:
        raise ValueError("pushing a model object needs its processor (processor=...): the Hub folder must carry it")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def _copy_folder(source: Path, folder: Path) -> None:
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"{source}: not a saved checkpoint folder (no config.json)")
    for item in source.iterdir():
        if item.name in _SKIP or item.name.startswith(".") or item.suffix == ".lock":
            continue
        target = folder / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copyfile(item, target)  # follows symlinks: the Hub gets file contents


def _complete_remote_code(folder: Path, model_type: str) -> None:
    """Add any remote-code file the folder lacks from this package's model folder, and check none of them
    reaches back into `hf_captioners` (which a fresh Hub user does not have)."""
    spec = spec_for(model_type)
    for name in spec.remote_code:
        target = folder / name
        if not target.exists():
            shutil.copyfile(spec.folder / name, target)
            logger.info("added remote-code file %s", name)
        code = target.read_text(encoding="utf-8")
        if re.search(r"^\s*(from|import)\s+hf_captioners\b", code, re.MULTILINE):
            raise ValueError(f"{target}: imports hf_captioners, so it would not load as Hub remote code")
        if "from .." in code:
            raise ValueError(f"{target}: uses a parent-relative import, which Hub remote code cannot resolve")


def stage_folder(
    folder_or_model,
    out_dir: str | os.PathLike,
    processor=None,
    repo_id: str = "user/model",
    results=None,
    **card_kwargs,
) -> Path:
    """Write exactly what `push_to_hub` uploads into `out_dir` (which must not exist yet): model, processor,
    remote code, pipeline, README.md. Written to a temporary sibling and renamed, so a crash leaves no half folder."""
    from hf_captioners.hub.cards import count_parameters, render_model_card

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: exists and is not empty; stage into a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        if isinstance(folder_or_model, (str, os.PathLike)):
            _copy_folder(Path(folder_or_model), tmp)
            if processor is not None:
                processor.save_pretrained(tmp)
        else:
            _save_model(folder_or_model, processor, tmp)
        config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
        model_type = config.get("model_type")
        spec_for(model_type)
        if not any((tmp / name).is_file() for name in _PROCESSOR_FILES):
            raise FileNotFoundError(f"{folder_or_model}: no processor saved with the model (processor_config.json)")
        if not config.get("auto_map") or "image-to-text" not in (config.get("custom_pipelines") or {}):
            raise ValueError("config.json lacks auto_map / custom_pipelines: save the model with this package's classes")
        _complete_remote_code(tmp, model_type)
        generation = {}
        if (tmp / "generation_config.json").is_file():
            generation = json.loads((tmp / "generation_config.json").read_text(encoding="utf-8"))
        cache_size = None
        if (tmp / "entries.txt").is_file():
            cache_size = len((tmp / "entries.txt").read_text(encoding="utf-8").splitlines())
        card = render_model_card(config, repo_id, results=results, num_parameters=count_parameters(tmp),
                                 generation=generation, cache_size=cache_size, **card_kwargs)  # fmt: skip
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("staged %s (%d files) in %s", model_type, sum(1 for p in out_dir.rglob("*") if p.is_file()), out_dir)
    return out_dir


def push_to_hub(
    folder_or_model,
    repo_id: str,
    processor=None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run_dir: str | os.PathLike | None = None,
    results=None,
    token: str | None = None,
    api=None,
    **card_kwargs,
):
    """Upload a saved folder (or a model + `processor`) to `repo_id` with a rendered model card.

    `dry_run_dir`: only stage the folder there and return its path (no network). Otherwise returns the
    commit URL. `results`: the evaluation runner's results.json (path or dict) for the card. `revision`: a
    branch, created if missing. `api`: an `HfApi`-like object (tests pass a fake). `card_kwargs` go to
    `render_model_card` (license, datasets, base_model, tags, eval_dataset_name, ...).
    """
    if dry_run_dir is not None:
        return stage_folder(folder_or_model, dry_run_dir, processor=processor, repo_id=repo_id, results=results,
                            **card_kwargs)  # fmt: skip
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="hf_captioners_push_") as tmp:
        folder = stage_folder(folder_or_model, Path(tmp) / "repo", processor=processor, repo_id=repo_id,
                              results=results, **card_kwargs)  # fmt: skip
        url = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
        logger.info("repo ready: %s", url)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            revision=revision,
            commit_message=commit_message or f"Upload {json.loads((folder / 'config.json').read_text())['model_type']} captioner",
        )
    return getattr(info, "commit_url", info)
