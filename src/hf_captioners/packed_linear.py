"""Linear layers that multiply by a copy of their weight in oneDNN's blocked layout, for inference on a CPU.

A decoding step multiplies a few rows (the batch) by every weight matrix, so its cost is about one read of the
weights, and torch's default fp32 CPU GEMM (MKL's) reads a row-major matrix more slowly than oneDNN reads a copy
reordered once into its own layout (about half as fast on the AMD EPYC this was measured on). torch's inductor
makes that reordering when it freezes a graph, but its frozen decode step indexed past transformers' static
cache and aborted, and for fp32 on x86 it picks MKL's packed GEMM, which was not faster; so it is done here.

The copy is refreshed when the weight changes (an optimizer step, `load_state_dict`, a new tensor), and the layer
computes as before whenever gradients are wanted, the input is not fp32 on the CPU, or oneDNN is missing.
"""

from __future__ import annotations

import logging
import types

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

__all__ = ["PackedLinearWeights", "pack_linear_weights"]

logger = logging.getLogger(__name__)


def _dense_weight(module: nn.Module) -> torch.Tensor:
    """The weight as [out_features, in_features]: GPT-2's Conv1D stores its transpose."""
    weight = module.weight.detach()
    return weight.t() if isinstance(module, Conv1D) else weight


def _weight_key(module: nn.Module) -> tuple[int, int]:
    weight = module.weight  # an inference-mode tensor has no version counter (and cannot change outside that mode)
    return (-1 if weight.is_inference() else weight._version), weight.data_ptr()


class _PackedWeight:
    """oneDNN's copy of one weight; a copied or unpickled module packs its own weight again when first called."""

    __slots__ = ("key", "tensor")

    def __init__(self):
        self.key, self.tensor = None, None

    def __deepcopy__(self, memo) -> _PackedWeight:
        return _PackedWeight()

    def __reduce__(self):
        return _PackedWeight, ()


def _packed_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    weight = self.weight
    if (x.device.type != "cpu" or weight.device.type != "cpu" or x.dtype != torch.float32
            or weight.dtype != torch.float32 or x.numel() == 0
            or (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad))):
        return type(self).forward(self, x)
    packed, key = self._packed_weight, _weight_key(self)
    if packed.key != key:
        packed.tensor = torch.ops.mkldnn._reorder_linear_weight(_dense_weight(self).contiguous(), None)
        packed.key = key
    bias = None if self.bias is None else self.bias.detach()
    y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]).contiguous(), packed.tensor, bias,
                                           "none", [], "")
    return y.view(*x.shape[:-1], y.shape[-1])


def _is_packed(module: nn.Module) -> bool:
    forward = module.__dict__.get("forward")
    return isinstance(forward, types.MethodType) and forward.__func__ is _packed_forward


class PackedLinearWeights:
    """What `pack_linear_weights` packed; `remove()` (or leaving its `with` block) restores the layers."""

    def __init__(self, modules: list[nn.Module]):
        self.modules = modules

    def remove(self) -> None:
        for module in self.modules:
            if _is_packed(module):
                del module.forward, module._packed_weight
        self.modules = []

    def __enter__(self) -> PackedLinearWeights:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def pack_linear_weights(model: nn.Module) -> PackedLinearWeights:
    """Give every fp32 CPU `nn.Linear` / GPT-2 `Conv1D` of `model` a oneDNN-packed copy of its weight.

    Use for inference on a CPU (`generate`, pipelines, re-captioning); the copies add the layers' weight memory
    once more. Modules wrapped by accelerate hooks are left alone. Outputs equal the stock layers' to float
    rounding (oneDNN sums in another order), so greedy tokens only differ where two logits tie within it.
    """
    if not torch.backends.mkldnn.is_available():
        logger.warning("torch was built without oneDNN: linear layers keep their default CPU GEMM")
        return PackedLinearWeights([])
    packed = []
    for module in model.modules():
        if (not isinstance(module, (nn.Linear, Conv1D)) or _is_packed(module) or hasattr(module, "_hf_hook")
                or module.weight.device.type != "cpu" or module.weight.dtype != torch.float32):
            continue
        module._packed_weight = _PackedWeight()
        module.forward = types.MethodType(_packed_forward, module)
        packed.append(module)
    if packed:
        logger.info("packed %d linear layers' weights for oneDNN", len(packed))
    else:
        logger.warning("pack_linear_weights: no fp32 linear layer on the CPU to pack; the model runs as before")
    return PackedLinearWeights(packed)
