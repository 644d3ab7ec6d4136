"""The fast MAE computes the published function: same weights, input and noise -> same loss and predictions
as a plain re-statement of the reference formulas (fp32), and bf16 stays close."""

import pytest
import torch

from spectralgpt.models import create_model, random_masking
from spectralgpt.models.reference import ReferenceMAE


def pair(name, **overrides):
    torch.manual_seed(0)
    fast = create_model(name, **overrides)
    ref = ReferenceMAE(fast.cfg)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name,overrides", [
    ("mae_vit_tiny_patch8_64", {}),
    ("mae_vit_tiny_patch8_64", {"norm_pix_loss": True}),
    ("mae_vit_tiny_patch8_64", {"norm_pix_loss": True, "loss3_on_raw_targets": True, "spectral_loss_weight": 0.3}),
    ("mae_vit_tiny_patch8_64", {"t_patch_size": 2}),  # 128 values per token: the published code crashes here
    ("mae_vit_base_patch8_96", {}),
])
def test_fast_path_equals_reference_fp32(name, overrides):
    fast, ref = pair(name, **overrides)
    c = fast.cfg
    x = torch.rand(2, c.num_bands, c.img_size, c.img_size)
    noise = torch.rand(2, c.num_tokens)
    with torch.no_grad():
        loss_a, pred_a, mask_a = fast(x, 0.9, noise)
        loss_b, pred_b, mask_b = ref(x, 0.9, noise)
    assert torch.equal(mask_a, mask_b)
    assert rel(loss_a, loss_b) < 1e-5
    assert rel(pred_a, pred_b) < 1e-5


def test_gradients_equal_reference():
    fast, ref = pair("mae_vit_tiny_patch8_64")
    x, noise = torch.rand(2, 12, 64, 64), torch.rand(2, 256)
    fast(x, 0.9, noise)[0].backward()
    ref(x, 0.9, noise)[0].backward()
    grads = dict(ref.named_parameters())
    for name, p in fast.named_parameters():
        # attention key biases get a gradient that is zero in exact arithmetic (softmax is shift-invariant)
        assert torch.allclose(p.grad, grads[name].grad, rtol=1e-4, atol=1e-7), name


def test_bf16_autocast_within_tolerance():
    """bf16 keeps 8 mantissa bits: the loss stays within 2% and predictions within 5% of their range."""
    fast, _ = pair("mae_vit_tiny_patch8_64")
    x, noise = torch.rand(4, 12, 64, 64), torch.rand(4, 256)
    with torch.no_grad():
        loss32, pred32, _ = fast(x, 0.9, noise)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss16, pred16, _ = fast(x, 0.9, noise)
    assert loss16.dtype == torch.float32  # the loss is always reduced in fp32
    assert rel(loss16, loss32) < 2e-2
    assert rel(pred16.float(), pred32) < 5e-2


def test_masking_follows_the_argsort_rule():
    noise = torch.rand(3, 1024)
    ids_keep, mask, ids_restore = random_masking(3, 1024, 0.9, noise)
    assert ids_keep.shape == (3, 102)  # int(1024 * 0.1): Python truncation as published
    assert mask.sum(1).tolist() == [922.0] * 3
    for b in range(3):
        kept = torch.argsort(noise[b])[:102]
        assert torch.equal(ids_keep[b], kept)
        assert mask[b, kept].sum() == 0
    assert torch.equal(torch.gather(torch.argsort(noise), 1, ids_restore), torch.arange(1024).expand(3, -1))
    assert random_masking(1, 576, 0.9)[0].shape == (1, 57)


def test_loss_terms_are_reported_and_weighted():
    fast, _ = pair("mae_vit_tiny_patch8_64", spectral_loss_weight=0.5)
    x, noise = torch.rand(2, 12, 64, 64), torch.rand(2, 256)
    loss, _, _, terms = fast(x, 0.9, noise, return_terms=True)
    assert torch.allclose(loss, terms["loss_masked"] + 0.5 * terms["loss_spectral"])
