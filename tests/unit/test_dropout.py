"""The dense heads' element-wise dropout (`spectralgpt.models.layers.Dropout`): nn.Dropout's semantics, a cheaper
mask sampler on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spectralgpt.models import create_model
from spectralgpt.models.layers import Dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_it_drops_each_element_with_probability_p_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    x = torch.ones(8, 64, 32, 32)
    y = Dropout(p).train()(x)
    dropped = (y == 0).double().mean().item()
    n = x.numel()
    assert abs(dropped - p) < 5 * (p * (1 - p) / n) ** 0.5  # within 5 standard errors of a Bernoulli(p) rate
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)), rtol=1e-4)  # survivors scaled by 1 / (1 - p)
    assert abs(y.mean().item() - 1.0) < 0.01


def test_neighbouring_elements_are_independent():
    """Four elements share one 64-bit draw: their drop decisions must still be uncorrelated."""
    torch.manual_seed(1)
    kept = (Dropout(0.5).train()(torch.ones(1 << 20)) != 0).double()
    for lag in (1, 2, 3, 4):
        c = torch.corrcoef(torch.stack([kept[:-lag], kept[lag:]]))[0, 1].item()
        assert abs(c) < 0.01, (lag, c)


def test_it_follows_the_torch_seed_and_is_the_identity_in_eval():
    x = torch.randn(4, 16, 9, 7)  # a size that is not a multiple of four
    d = Dropout(0.3).train()
    torch.manual_seed(5)
    a = d(x)
    torch.manual_seed(5)
    assert torch.equal(a, d(x))
    assert not torch.equal(a, d(x))  # the next draw differs
    assert d.eval()(x) is x
    assert Dropout(0.0).train()(x) is x
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))


def test_gradients_pass_only_through_the_kept_elements():
    torch.manual_seed(2)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    y = Dropout(0.25).train()(x)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.75))
    assert torch.all(x.grad[~kept & (x.detach() != 0)] == 0)


def test_bf16_input_keeps_its_dtype_and_its_expectation():
    """The 1 / (1 - p) factor is applied in fp32 arithmetic: a factor rounded to bf16 (1.111 -> 1.109) would shrink
    every kept activation by 0.16 %."""
    torch.manual_seed(3)
    x = torch.rand(256, 1024, dtype=torch.bfloat16) + 1
    y = Dropout(0.1).train()(x)
    assert y.dtype == torch.bfloat16
    kept = y != 0
    exact = (x.float() / (1 - round(0.1 * 65536) / 65536)).bfloat16()  # each kept value rounded once
    assert torch.equal(y[kept], exact[kept])


def test_probability_outside_the_unit_interval_is_refused():
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)


def test_the_dense_heads_use_it_and_their_state_dict_is_unchanged():
    """It replaces nn.Dropout in the segmentation head without renaming or adding state (checkpoints load)."""
    model = create_model("seg_vit_tiny_patch8_64", dense_dropout=0.1)
    kinds = {type(m) for m in model.modules()}
    assert Dropout in kinds and nn.Dropout not in kinds
    reference = create_model("seg_vit_tiny_patch8_64", dense_dropout=0.0)
    assert set(model.state_dict()) == set(reference.state_dict())
