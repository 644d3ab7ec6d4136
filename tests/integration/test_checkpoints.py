"""Checkpoints: the published .pth layout round-trips, loads safely, resizes position tables; our own format."""

import argparse
import pickle

import pytest
import torch
import torch.nn.functional as F

from spectralgpt.models import (MODEL_CONFIGS, CheckpointError, create_model, export_published, load_model,
                                load_pretrained, save_model)

ARGS = dict(model="mae_vit_base_patch8_128", input_size=128, mask_ratio=0.9, blr=1e-4, epoch=199)


def published(model, path, prefix=""):
    """Write a file exactly like the original training script does (model/optimizer/epoch/scaler/args)."""
    sd = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}, "epoch": 199,
                "scaler": {"scale": 65536.0}, "args": argparse.Namespace(**ARGS)}, path)
    return path


@pytest.mark.parametrize("name", sorted(MODEL_CONFIGS))
def test_published_layout_roundtrips_for_every_config(name, tmp_path):
    # depth 1 keeps large/huge affordable while exercising every width, patch, band and head layout
    torch.manual_seed(0)
    model = create_model(name, depth=1)
    path = published(model, tmp_path / "ckpt.pth", prefix="module.")
    clone = create_model(name, depth=1)
    report = load_pretrained(clone, path)
    assert not report.missing and not report.unexpected and not report.resized
    for (k, a), b in zip(model.state_dict().items(), clone.state_dict().values()):
        assert torch.equal(a, b), k


def test_96px_checkpoint_loads_into_128px_models_with_interpolated_spatial_tables(tmp_path):
    torch.manual_seed(0)
    stage1 = create_model("mae_vit_tiny_patch8_64", img_size=96)
    path = published(stage1, tmp_path / "SpectralGPT.pth")
    for name in ("mae_vit_tiny_patch8_64", "vit_tiny_patch8_64", "seg_vit_tiny_patch8_64", "cd_vit_tiny_patch8_64"):
        model = create_model(name, img_size=128)
        report = load_pretrained(model, path)
        resized = {k: (a, b) for k, a, b in report.resized}
        assert resized["pos_embed_spatial"] == ((1, 144, 96), (1, 256, 96))
        grid = stage1.pos_embed_spatial.detach().reshape(1, 12, 12, 96).permute(0, 3, 1, 2)
        want = F.interpolate(grid, size=(16, 16), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
        assert torch.allclose(model.pos_embed_spatial.detach(), want.reshape(1, 256, 96), atol=1e-6)
        assert torch.equal(model.pos_embed_temporal, stage1.pos_embed_temporal)  # spectral table kept as is
        if name.startswith("mae"):
            assert "decoder_pos_embed_spatial" in resized and not report.missing
        else:
            assert "mask_token" in report.unexpected
            assert all(not k.startswith(("blocks", "patch_embed", "norm")) for k in report.missing)
        out = model(torch.rand(1, 12, 128, 128), torch.rand(1, 12, 128, 128)) if name.startswith("cd") \
            else model(torch.rand(1, 12, 128, 128))
        assert torch.isfinite(out[0] if isinstance(out, tuple) else out).all()


def test_legacy_drop_keeps_fresh_spatial_tables(tmp_path):
    torch.manual_seed(0)
    stage1 = create_model("mae_vit_tiny_patch8_64", img_size=96)
    model = create_model("mae_vit_tiny_patch8_64", img_size=128)
    fresh = model.pos_embed_spatial.detach().clone()
    report = load_pretrained(model, stage1.state_dict(), resize_pos_embed="drop")
    assert {k for k, _, _ in report.skipped} == {"pos_embed_spatial", "decoder_pos_embed_spatial"}
    assert torch.equal(model.pos_embed_spatial, fresh)  # as the published stage-2 resume did
    assert torch.equal(model.pos_embed_temporal, stage1.pos_embed_temporal)


def test_legacy_classifier_ignores_pretrained_position_tables(tmp_path):
    path = published(create_model("mae_vit_tiny_patch8_64"), tmp_path / "ckpt.pth")
    model = create_model("vit_tiny_patch8_64", legacy_joint_pos_embed=True)
    report = load_pretrained(model, path)
    assert set(report.missing) == {"pos_embed", "head.weight", "head.bias"}
    assert {"pos_embed_spatial", "pos_embed_temporal"} <= set(report.unexpected)
    assert torch.count_nonzero(model.pos_embed) == 0


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned-by-checkpoint",))


def test_malicious_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        torch.save({"model": {}, "payload": _Evil()}, f)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_pretrained(create_model("mae_vit_tiny_patch8_64"), path)
    assert not (tmp_path / "pwned-by-checkpoint").exists()


def test_truncated_and_missing_files(tmp_path):
    path = published(create_model("mae_vit_tiny_patch8_64"), tmp_path / "ckpt.pth")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_pretrained(create_model("mae_vit_tiny_patch8_64"), path)
    with pytest.raises(CheckpointError, match="not found"):
        load_pretrained(create_model("mae_vit_tiny_patch8_64"), tmp_path / "nope.pth")
    (tmp_path / "garbage.pth").write_bytes(pickle.dumps([1, 2, 3])[:5])
    with pytest.raises(CheckpointError):
        load_pretrained(create_model("mae_vit_tiny_patch8_64"), tmp_path / "garbage.pth")


def test_mismatched_config_names_keys_and_shapes(tmp_path):
    path = published(create_model("mae_vit_tiny_patch8_64"), tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointError, match=r"patch_embed.proj.weight: checkpoint \[96, 1, 3, 8, 8\] "
                                              r"vs model \[96, 1, 12, 8, 8\]"):
        load_pretrained(create_model("vit_tiny_patch8_64", t_patch_size=12), path)
    with pytest.raises(CheckpointError, match=r"blocks.0.attn.q.weight: checkpoint \[96, 96\] vs model \[192, 192\]"):
        load_pretrained(create_model("mae_vit_tiny_patch8_64", embed_dim=192), path)
    with pytest.raises(CheckpointError, match="lacks .* encoder weights.*blocks.4"):
        load_pretrained(create_model("mae_vit_tiny_patch8_64", depth=6), path)


def test_head_of_another_class_count_is_skipped(tmp_path):
    src = create_model("vit_tiny_patch8_64", num_classes=10)
    report = load_pretrained(create_model("vit_tiny_patch8_64", num_classes=19), src.state_dict())
    assert [k for k, _, _ in report.skipped] == ["head.weight", "head.bias"]


def test_own_format_roundtrip_records_bands_and_recipe(tmp_path):
    torch.manual_seed(0)
    model = create_model("seg_vit_tiny_patch8_64", num_classes=4).eval()
    recipe = {"name": "minmax", "eps": 1e-6}
    save_model(model, tmp_path / "m", normalization=recipe, extra={"task": "segmentation"})
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"model.safetensors", "config.json"}
    clone, meta = load_model(tmp_path / "m")
    assert meta["bands"][8] == "B8A" and meta["normalization"] == recipe
    x = torch.rand(1, 12, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))
    report = load_pretrained(create_model("seg_vit_tiny_patch8_64", num_classes=4), tmp_path / "m")
    assert not report.missing


def test_export_published_is_readable_by_load_pretrained(tmp_path):
    model = create_model("mae_vit_tiny_patch8_64")
    path = export_published(model, tmp_path / "out.pth", {"model": "mae_vit_tiny_patch8_64"})
    ckpt = torch.load(path, weights_only=False)
    assert isinstance(ckpt["args"], argparse.Namespace)
    assert not load_pretrained(create_model("mae_vit_tiny_patch8_64"), path).missing
