"""SpectralGPT backbones through TerraTorch's registry: per-layer features of the documented shapes, published
weights from a local file, and a whole TerraTorch segmentation model (necks + UPerNet) on top.

Skipped where terratorch does not import (the optional extra `spectralgpt[terratorch]`)."""

import importlib

import pytest
import torch


def _import_or_skip(name):
    try:
        return importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - its torchvision may not match the installed torch
        pytest.skip(f"{name} does not import here: {type(e).__name__}: {str(e).splitlines()[0][:120]}",
                    allow_module_level=True)


registry = _import_or_skip("terratorch.registry")
tt = _import_or_skip("spectralgpt.integrations.terratorch")

from spectralgpt.integrations.encoder import ENCODERS, SpectralGPTBackbone  # noqa: E402
from spectralgpt.models import create_model, export_published  # noqa: E402

TINY = "spectralgpt_vit_tiny_patch8_64"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    torch.manual_seed(0)
    mae = create_model("mae_vit_tiny_patch8_64").eval()
    return mae, export_published(mae, tmp_path_factory.mktemp("ckpt") / "SpectralGPT-tiny.pth")


def test_every_encoder_is_a_terratorch_backbone():
    for name in ENCODERS:
        assert name in registry.BACKBONE_REGISTRY and f"terratorch_{name}" in registry.BACKBONE_REGISTRY
    with pytest.raises(ValueError, match="needs ckpt_path"):
        registry.BACKBONE_REGISTRY.build(TINY, pretrained=True)


def test_backbone_features_have_the_documented_shapes(published):
    mae, path = published
    bb = registry.BACKBONE_REGISTRY.build(TINY, pretrained=True, ckpt_path=str(path), out_indices=[0, 1, 2, 3])
    assert isinstance(bb, SpectralGPTBackbone) and bb.out_channels == [4 * 96] * 4
    x = torch.rand(2, 12, 64, 64)
    with torch.no_grad():
        feats = bb.eval()(x)
        assert [f.shape for f in feats] == [(2, 4 * 64, 96)] * 4  # (B, T*L, D)
        assert torch.equal(feats[-1], mae.encode(x))  # the last block through the final norm: the MAE encoder
        maps = bb.prepare_features_for_image_model(feats)
    assert [m.shape for m in maps] == [(2, 384, 8, 8)] * 4  # (B, T*D, H/8, W/8)


def test_a_terratorch_segmentation_model_on_the_backbone(published):
    _, path = published
    factory = registry.MODEL_FACTORY_REGISTRY.build("EncoderDecoderFactory")
    model = factory.build_model(
        task="segmentation", backbone=TINY, backbone_ckpt_path=str(path), backbone_out_indices=[0, 1, 2, 3],
        necks=[{"name": "ReshapeTokensToImage", "remove_cls_token": False, "effective_time_dim": 4},
               {"name": "LearnedInterpolateToPyramidal"}],
        decoder="UperNetDecoder", decoder_channels=32, num_classes=3)
    out = model(torch.rand(2, 12, 64, 64)).output
    assert out.shape == (2, 3, 64, 64)
    out.mean().backward()  # trainable end to end
    assert model.encoder.blocks[0].attn.q.weight.grad is not None
