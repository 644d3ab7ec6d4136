"""The toolkit-facing encoder (timm's interface, TerraTorch's per-layer features) without either toolkit: published
key names, loading a published checkpoint, the fine-tuned classifier's function, feature shapes and layout."""

import argparse
import json

import pytest
import torch

from spectralgpt.integrations.encoder import (
    ENCODERS, MAE_ONLY_PREFIXES, create_backbone, create_encoder, take_indices, tokens_to_maps,
)
from spectralgpt.models import MODEL_CONFIGS, create_model, export_published
from spectralgpt.models.checkpoint import ENCODER_PREFIXES
from spectralgpt.models.pos_embed import resize_spatial

TINY = "spectralgpt_vit_tiny_patch8_64"


@pytest.fixture(scope="module")
def official():
    from tests.conftest import REFERENCE

    path = REFERENCE / "official_state_dict_shapes.json"
    if not path.exists():
        pytest.skip("reference shapes not available")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A tiny MAE written in the published checkpoint layout ({'model', 'args': Namespace, 'epoch'})."""
    torch.manual_seed(0)
    mae = create_model("mae_vit_tiny_patch8_64").eval()
    path = export_published(mae, tmp_path_factory.mktemp("ckpt") / "SpectralGPT-tiny.pth", args={"epoch": 3})
    return mae, path


def shapes(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def test_encoder_keys_are_the_published_encoder_keys(official):
    with torch.device("meta"):
        enc = create_encoder("spectralgpt_vit_base_patch8_128")
    want = {k: v for k, v in official["mae_vit_base_patch8_128"].items() if not k.startswith(MAE_ONLY_PREFIXES)}
    assert shapes(enc) == want and len(want) == 198  # 198 encoder tensors (reference section 4)
    assert all(k.startswith(ENCODER_PREFIXES) for k in want)  # what the checkpoint converter calls encoder keys
    block = sorted(k.removeprefix("blocks.0.") for k in want if k.startswith("blocks.0."))
    for name, mae_name in ENCODERS.items():  # every variant: the same names, one set per block of its depth
        with torch.device("meta"):
            keys = set(create_encoder(name).state_dict())
        depth = MODEL_CONFIGS[mae_name]["depth"]
        assert keys == {k for k in want if not k.startswith("blocks.")} | {
            f"blocks.{i}.{k}" for i in range(depth) for k in block}, name
    with torch.device("meta"):
        assert set(create_encoder("spectralgpt_vit_base_patch8_128", num_classes=10).state_dict()) == set(want) | {
            "head.weight", "head.bias"}


def test_published_checkpoint_loads_safely_and_by_plain_load_state_dict(published):
    mae, path = published
    enc = create_encoder(TINY, pretrained=path, global_pool="").eval()
    x = torch.rand(2, 12, 64, 64)
    with torch.no_grad():
        assert torch.equal(enc.forward_features(x), mae.encode(x))  # the MAE encoder's output, unmasked
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(path, weights_only=True)
    plain = create_encoder(TINY)
    plain.load_state_dict(ckpt["model"], strict=True)  # the load hook leaves the decoder keys out
    assert all(torch.equal(v, mae.state_dict()[k]) for k, v in plain.state_dict().items())
    small = create_encoder(TINY, img_size=32)
    small.load_state_dict(ckpt["model"])  # another image size: the spatial table is resized
    assert torch.equal(small.pos_embed_spatial, resize_spatial(mae.pos_embed_spatial, 4))
    with pytest.raises(RuntimeError, match="head"):  # a head cannot come from an MAE checkpoint
        create_encoder(TINY, num_classes=3).load_state_dict(ckpt["model"], strict=True)


def test_encoder_computes_the_fine_tuned_classifier(tmp_path):
    torch.manual_seed(1)
    clf = create_model("vit_tiny_patch8_64", num_classes=5, img_size=32).eval()
    torch.nn.init.normal_(clf.head.weight)
    enc = create_encoder(TINY, num_classes=5, img_size=32).eval()
    enc.load_state_dict(clf.state_dict(), strict=True)
    x = torch.rand(2, 12, 32, 32)
    with torch.no_grad():
        assert torch.allclose(enc(x), clf(x), atol=1e-6)
        assert torch.allclose(enc.forward_head(enc.forward_features(x), pre_logits=True), clf.embed(x), atol=1e-6)
    enc.reset_classifier(0)
    assert enc(x).shape == (2, 96) and isinstance(enc.get_classifier(), torch.nn.Identity)
    assert enc.no_weight_decay() == {"pos_embed_spatial", "pos_embed_temporal"}


def test_intermediate_features_shapes_and_layout(published):
    mae, _ = published
    enc = create_encoder(TINY, global_pool="")
    enc.load_state_dict(mae.state_dict())
    x = torch.rand(2, 12, 64, 64)
    with torch.no_grad():
        final, maps = enc.forward_intermediates(x, indices=[0, 3], norm=True)
        tokens = enc.forward_intermediates(x, indices=2, output_fmt="NLC", intermediates_only=True)
    assert [m.shape for m in maps] == [(2, 4 * 96, 8, 8)] * 2 and [t.shape for t in tokens] == [(2, 256, 96)] * 2
    assert torch.equal(tokens_to_maps(final, 4, 8), maps[1])  # the final output is block 3's, normed
    t, r, c, d = 2, 5, 3, 17  # map channel t*D + d at (r, c) is group t's token at position r*8 + c
    assert maps[1][1, t * 96 + d, r, c] == final[1, t * 64 + r * 8 + c, d]
    assert take_indices(12, None) == list(range(12)) and take_indices(12, 2) == [10, 11]
    assert take_indices(12, [3, -1]) == [3, 11]
    with pytest.raises(ValueError, match="out of range"):
        take_indices(4, [4])
    assert enc.prune_intermediate_layers([1]) == [1] and len(enc.blocks) == 2 and len(enc.feature_info) == 2


def test_backbone_per_layer_features(published):
    _, path = published
    bb = create_backbone(TINY, path, img_size=32, out_indices=[0, 1, 3])
    assert bb.out_channels == [384] * 3 and bb.effective_time_dim == 4
    x = torch.rand(2, 12, 32, 32)
    with torch.no_grad():
        feats = bb(x)
        maps = bb.prepare_features_for_image_model(feats)
        bb.output = "maps"
        direct = bb(x)
    assert [f.shape for f in feats] == [(2, 64, 96)] * 3
    assert [m.shape for m in maps] == [(2, 384, 4, 4)] * 3 and all(torch.allclose(a, b) for a, b in zip(maps, direct))
    assert set(bb.state_dict()) == set(create_encoder(TINY).state_dict())


def test_encoder_refuses_other_band_sets_and_names():
    with pytest.raises(ValueError, match="takes 12 input bands .* in_chans=3.*BandMapping"):
        create_encoder(TINY, in_chans=3)
    with pytest.raises(ValueError, match=r"takes the bands B1, .*BandMapping"):
        create_encoder(TINY, bands=("B2", "B3", "B4"))
    with pytest.raises(ValueError, match="square"):
        create_encoder(TINY, img_size=(64, 32))
    with pytest.raises(KeyError, match="unknown SpectralGPT encoder 'spectralgpt_vit_giant'"):
        create_encoder("spectralgpt_vit_giant")
