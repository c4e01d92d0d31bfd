"""Reading released checkpoints without running their pickles.

Original checkpoints are pickles; unpickling one can run any code it names. They load here only through
safetensors or `torch.load(weights_only=True)`, which rebuilds tensors and plain containers and refuses
everything else. Training frameworks also pickle a few of their own classes next to the weights (PyTorch
Lightning 1.x keys its callback states by the callback CLASS, hyper-parameters may be an `AttributeDict` or an
argparse `Namespace`); those names, and only those, are mapped to inert stand-ins that keep their data as a
dict and run nothing. A checkpoint naming anything else is refused with a message saying how to re-save just
its tensors where it is trusted.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from hf_captioners.errors import OperatorError

logger = logging.getLogger(__name__)

__all__ = [
    "FRAMEWORK_GLOBALS",
    "CheckpointError",
    "InertObject",
    "check_keys",
    "load_checkpoint",
    "load_into",
    "load_state_dict",
    "strip_prefix",
]


class CheckpointError(OperatorError, ValueError):
    """A checkpoint that cannot be read safely or does not have the expected layout."""


def _resave_hint(path: Path) -> str:
    return (
        "If you trust this file, re-save only its tensors in a trusted environment, e.g.\n"
        f"  python -c \"import torch; c = torch.load('{path}', weights_only=False); "
        f"torch.save({{'state_dict': c.get('state_dict', c)}}, '{path.stem}.weights.pt')\"\n"
        "and convert the new file."
    )


class InertObject:
    """What an allow-listed framework object becomes: its pickled state kept as `.state`. No code of it runs."""

    def __setstate__(self, state):
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {type(self).__name__} {getattr(self, 'state', None)!r}>"


# names that PyTorch Lightning 1.x / 2.x and argparse leave in checkpoints beside the weights: callback classes
# (Lightning <= 1.4 keys callback states by the class), dict subclasses of hyper-parameters, argparse.Namespace
_CALLBACKS = ("callbacks.model_checkpoint.ModelCheckpoint", "callbacks.early_stopping.EarlyStopping",
              "callbacks.lr_monitor.LearningRateMonitor", "callbacks.progress.ProgressBar",
              "callbacks.progress.tqdm_progress.TQDMProgressBar")  # fmt: skip
_DICTS = ("pytorch_lightning.utilities.parsing.AttributeDict", "lightning.pytorch.utilities.parsing.AttributeDict",
          "lightning_fabric.utilities.data.AttributeDict", "lightning.fabric.utilities.data.AttributeDict")  # fmt: skip
FRAMEWORK_GLOBALS = (
    tuple(f"{root}.{name}" for root in ("pytorch_lightning", "lightning.pytorch") for name in _CALLBACKS)
    + _DICTS
    + ("argparse.Namespace",)
)


def _stand_in(name: str):
    if name in _DICTS:
        return dict  # rebuilt as a plain dict of its items
    return type(name.rsplit(".", 1)[1], (InertObject,), {"__module__": __name__, "__qualname__": name})


_INERT = [(_stand_in(name), name) for name in FRAMEWORK_GLOBALS]


def _reason(message: str) -> str:
    """The specific line of torch's long weights-only error (which global, which opcode)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    specific = [line for line in lines if "GLOBAL" in line or "global" in line or "Unsupported" in line]
    return (specific or lines or ["unknown error"])[0][:300]


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The top-level dict of a `.pt` / `.ckpt` / `.bin` (weights-only unpickling) or a `.safetensors` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    try:
        with torch.serialization.safe_globals(_INERT):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        message = str(error)
        if "GLOBAL" not in message and "global" not in message:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_reason(message)})") from error
        raise CheckpointError(
            f"{path}: refused to load: the pickle names code or classes beyond tensors and plain containers, "
            f"and unpickling it could run arbitrary code (torch.load weights_only=True: {_reason(message)}).\n"
            f"{_resave_hint(path)}"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({error})") from error
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors at the top level, got {type(obj).__name__}")
    return dict(obj)


def load_state_dict(path: str | os.PathLike, key: str | None = "state_dict") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: `checkpoint[key]` when present (Lightning, training scripts), else the
    top level itself. Non-tensor entries are an error naming them."""
    checkpoint = load_checkpoint(path)
    state = checkpoint.get(key, checkpoint) if key else checkpoint
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: '{key}' is a {type(state).__name__}, not a dict of tensors")
    bad = [name for name, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {bad[:8]}{' ...' if len(bad) > 8 else ''}")
    logger.info("%s: %d tensors", path, len(state))
    return dict(state)


def unwrap_ddp(state: Mapping[str, torch.Tensor], what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict without DistributedDataParallel's `module.` prefix: every key has it (a DDP checkpoint) or
    none does; a mix is a damaged or spliced checkpoint and an error naming the stray keys."""
    wrapped = [k.startswith("module.") for k in state]
    if any(wrapped) and not all(wrapped):
        stray = sorted(k for k in state if not k.startswith("module."))
        raise CheckpointError(f"{what}: keys without the DDP 'module.' prefix: {stray[:8]}")
    return strip_prefix(state, "module.") if state and all(wrapped) else dict(state)


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys that start with `prefix`, with it removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def check_keys(expected: Iterable[str], got: Iterable[str], what: str) -> None:
    """Every expected key present and nothing unexplained left over, or an error listing both."""
    expected, got = set(expected), set(got)
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: layout mismatch; missing {len(missing)} keys {missing[:6]}, "
            f"unexpected {len(unexpected)} keys {unexpected[:6]}"
        )


def load_into(model: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, ignore: Iterable[str] = ()) -> int:
    """Copy `state` into `model` after checking keys and shapes; returns the number of values copied.
    `ignore`: model keys allowed to be absent (tied weights)."""
    target = model.state_dict()
    ignore = set(ignore)
    check_keys(set(target) - (ignore - set(state)), state, what)
    for name, value in state.items():
        if tuple(value.shape) != tuple(target[name].shape):
            raise CheckpointError(f"{what}: {name} has shape {tuple(value.shape)}, the model expects {tuple(target[name].shape)}")
    model.load_state_dict(state, strict=False)
    return sum(v.numel() for v in state.values())
