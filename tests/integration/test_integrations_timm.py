"""timm.create_model("spectralgpt_vit_*") through timm's registry: the published weights' keys, weights from a
local file (published .pth through our safe loader, timm's checkpoint_path, our safetensors), features_only.

Skipped where timm does not import (it needs a torchvision that matches the installed torch)."""

import importlib
import json
import os

import pytest
import torch


def _import_or_skip(name):
    try:
        return importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - torchvision beside a mismatched torch fails with RuntimeError
        pytest.skip(f"{name} does not import here: {type(e).__name__}: {str(e).splitlines()[0][:120]}",
                    allow_module_level=True)


timm = _import_or_skip("timm")
st = _import_or_skip("spectralgpt.integrations.timm")

from spectralgpt.integrations.encoder import ENCODERS, MAE_ONLY_PREFIXES  # noqa: E402
from spectralgpt.models import create_model, export_published, save_model  # noqa: E402
from spectralgpt.models.checkpoint import CheckpointError  # noqa: E402

TINY = "spectralgpt_vit_tiny_patch8_64"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    torch.manual_seed(0)
    mae = create_model("mae_vit_tiny_patch8_64").eval()
    return mae, export_published(mae, tmp_path_factory.mktemp("ckpt") / "SpectralGPT-tiny.pth")


def test_every_encoder_is_registered():
    assert sorted(timm.list_models("spectralgpt_*")) == sorted(ENCODERS)
    assert "spectralgpt_vit_base_patch8_128" in ENCODERS and "spectralgpt_vit_huge_patch8_128" in ENCODERS
    cfg = timm.models.get_pretrained_cfg("spectralgpt_vit_base_patch8_128").to_dict()
    assert cfg["input_size"] == (12, 128, 128) and cfg["num_classes"] == 0 and cfg["custom_load"]


def test_create_model_has_the_published_keys():
    from tests.conftest import REFERENCE

    path = REFERENCE / "official_state_dict_shapes.json"
    if not path.exists():
        pytest.skip("reference shapes not available")
    official = json.loads(path.read_text())["mae_vit_base_patch8_128"]
    with torch.device("meta"):
        model = timm.create_model("spectralgpt_vit_base_patch8_128")
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == {
        k: v for k, v in official.items() if not k.startswith(MAE_ONLY_PREFIXES)}


def test_pretrained_from_a_local_published_file(published):
    mae, path = published
    x = torch.rand(2, 12, 64, 64)
    for custom_load in (False, True):  # timm's weights_only loader, or our allow-list loader
        model = timm.create_model(TINY, pretrained=True, global_pool="",
                                  pretrained_cfg_overlay=dict(file=str(path), custom_load=custom_load))
        with torch.no_grad():
            assert torch.equal(model.eval().forward_features(x), mae.encode(x))
    via_timm = timm.create_model(TINY, checkpoint_path=str(path))  # timm's own loader + our load hook
    assert all(torch.equal(v, mae.state_dict()[k]) for k, v in via_timm.state_dict().items())
    small = timm.create_model(TINY, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), img_size=32)
    assert small.pos_embed_spatial.shape == (1, 16, 96) and small(torch.rand(1, 12, 32, 32)).shape == (1, 96)


def test_our_fine_tuned_classifier_through_checkpoint_path(tmp_path):
    torch.manual_seed(2)
    clf = create_model("vit_tiny_patch8_64", num_classes=4).eval()
    torch.nn.init.normal_(clf.head.weight)
    folder = save_model(clf, tmp_path / "eurosat")
    model = timm.create_model(TINY, num_classes=4, checkpoint_path=str(folder / "model.safetensors")).eval()
    x = torch.rand(2, 12, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), clf(x), atol=1e-6)


def test_features_only_gives_per_block_maps():
    f = timm.create_model(TINY, features_only=True, out_indices=(1, 3))
    maps = f(torch.rand(2, 12, 64, 64))
    assert [m.shape for m in maps] == [(2, 384, 8, 8)] * 2
    assert f.feature_info.channels() == [384, 384] and f.feature_info.reduction() == [8, 8]


def test_a_pretrained_file_with_pickled_code_is_refused(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "args": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):  # our allow-list loader
        timm.create_model(TINY, pretrained=True, pretrained_cfg_overlay=dict(file=str(path), custom_load=True))
    with pytest.raises(RuntimeError, match="weights_only"):  # timm's own (torch.load with weights_only=True)
        timm.create_model(TINY, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert not marker.exists()
