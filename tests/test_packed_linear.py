"""oneDNN-packed linear layers against torch's own layers: same numbers (to rounding), same tokens, and every way a
weight can change or a gradient be wanted falls back to or refreshes from the real weight."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.profiler import profile
from transformers.pytorch_utils import Conv1D

from hf_captioners.packed_linear import pack_linear_weights
from hf_captioners.toyworld.tiny_altogether import tiny_altogether
from hf_captioners.toyworld.tiny_antarctic import tiny_antarctic

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def _reference(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """F.linear on the weight as [out, in]; GPT-2's Conv1D keeps it as [in, out]."""
    weight = module.weight.t() if isinstance(module, Conv1D) else module.weight
    return F.linear(x, weight, module.bias)


def _layers():
    torch.manual_seed(0)
    return [nn.Linear(48, 40), nn.Linear(48, 40, bias=False), Conv1D(40, 48)]


def _ran_onednn(layer: nn.Module, x: torch.Tensor) -> bool:
    with profile() as prof:
        layer(x)
    return any("_linear_pointwise" in event.key for event in prof.key_averages())


@torch.no_grad()
def test_packed_layers_compute_the_linear_map():
    x = torch.randn(3, 5, 48)
    inputs = [x, x[0], x[:, 0], x.transpose(0, 1), x[..., :1, :], torch.randn(48)]  # 3-D, 2-D, strided, 1-D
    for layer in _layers():
        with pack_linear_weights(layer) as packed:
            assert packed.modules == [layer]
            for inp in inputs:
                got = layer(inp)
                assert got.shape == inp.shape[:-1] + (40,)
                torch.testing.assert_close(got, _reference(layer, inp), rtol=1e-5, atol=1e-5)
            assert _ran_onednn(layer, x)
            assert layer(x[:0]).shape == (0, 5, 40)


def test_changed_weights_are_repacked():
    for layer in _layers():
        x = torch.randn(4, 48)
        with torch.no_grad(), pack_linear_weights(layer):
            layer(x)
            layer.weight.mul_(-2)  # an optimizer step changes the weight in place
            torch.testing.assert_close(layer(x), _reference(layer, x), rtol=1e-5, atol=1e-5)
            layer.load_state_dict({k: torch.randn_like(v) for k, v in layer.state_dict().items()})
            torch.testing.assert_close(layer(x), _reference(layer, x), rtol=1e-5, atol=1e-5)
            layer.weight = nn.Parameter(torch.randn_like(layer.weight))  # a new tensor
            torch.testing.assert_close(layer(x), _reference(layer, x), rtol=1e-5, atol=1e-5)
            assert _ran_onednn(layer, x)


def test_gradients_and_other_dtypes_use_the_stock_layer():
    for layer in _layers():
        x = torch.randn(4, 48)
        with pack_linear_weights(layer):
            out = layer(x)  # grad mode, weight requires grad: the real layer, bit for bit, with its gradient
            assert torch.equal(out, type(layer).forward(layer, x))
            out.sum().backward()
            assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
            assert not _ran_onednn(layer, x)
            with torch.no_grad():  # cast after packing
                layer.double()
                assert torch.equal(layer(x.double()), type(layer).forward(layer, x.double()))
    bf16 = nn.Linear(8, 4).to(torch.bfloat16)
    assert pack_linear_weights(bf16).modules == []  # only fp32 weights are packed


def test_remove_restores_the_layers_and_nothing_is_saved():
    model = nn.Sequential(*_layers()[:1], nn.ReLU(), nn.Linear(40, 8))
    keys = list(model.state_dict())
    x = torch.randn(2, 48)
    with torch.no_grad():
        stock = model(x)
        handle = pack_linear_weights(model)
        assert len(handle.modules) == 2 and pack_linear_weights(model).modules == []  # packing twice is a no-op
        assert list(model.state_dict()) == keys
        clone = copy.deepcopy(model)  # the copy's layers use the copy's weights
        clone[0].weight.zero_()
        torch.testing.assert_close(model(x), stock, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(clone(x), F.linear(F.relu(clone[0].bias.expand(2, -1)), clone[2].weight,
                                                      clone[2].bias), rtol=1e-5, atol=1e-5)
        handle.remove()
        assert all("forward" not in m.__dict__ and not hasattr(m, "_packed_weight") for m in model.modules())
        assert torch.equal(model(x), stock)


def _sharpen(lm_head: nn.Module) -> None:
    """Greedy choices must not hinge on float rounding: widen the logits' gaps (random tiny models have near ties)."""
    lm_head.weight.data.mul_(8)


@torch.no_grad()
@pytest.mark.parametrize("text_kind", ["gpt2", "opt"])
def test_altogether_generate_gives_the_stock_tokens(text_kind):
    model, processor = tiny_altogether(text_kind, seed=3)
    _sharpen(model.language_model.get_output_embeddings())
    images = [Image.new("RGB", (32, 32), (40 * i, 200 - 30 * i, 90)) for i in range(4)]
    inputs = processor(images=images, alt_text=["a red square", None, "Zorblax photo", "blue circle"])
    for options in ({"do_sample": False}, {"do_sample": False, "num_beams": 3}):
        kwargs = {"max_new_tokens": 12, "output_scores": True, "return_dict_in_generate": True, **options}
        stock = model.generate(**inputs, **kwargs)
        with pack_linear_weights(model) as packed:
            assert any(isinstance(m, Conv1D) for m in packed.modules) == (text_kind == "gpt2")
            ours = model.generate(**inputs, **kwargs)
        assert torch.equal(ours.sequences, stock.sequences), options
        for a, b in zip(ours.scores, stock.scores):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_antarctic_generate_gives_the_stock_tokens():
    model, processor, _ = tiny_antarctic(seed=2)
    _sharpen(model.get_output_embeddings())
    tables = processor.tokenizer(["a | red | square", "blue circle | photo of"], return_tensors="pt", padding=True)
    kwargs = {"max_new_tokens": 10, "num_beams": 3, "do_sample": False}
    stock = model.generate(input_ids=tables["input_ids"], attention_mask=tables["attention_mask"], **kwargs)
    with pack_linear_weights(model):
        ours = model.generate(input_ids=tables["input_ids"], attention_mask=tables["attention_mask"], **kwargs)
    assert torch.equal(ours, stock)
