"""Model configs are bounded (sizes, ratios, loss weights) and a model folder whose config.json does not match its
weights' header is refused before the model is built."""

import json
import math

import pytest
import torch
from pydantic import ValidationError

from spectralgpt.models import CheckpointError, create_model, load_model, save_model
from spectralgpt.models import checkpoint as ckpt
from spectralgpt.models.config import ModelConfig


@pytest.mark.parametrize("field, value, match", [
    ("embed_dim", 65536, "embed_dim must be in"), ("depth", 4096, "depth must be in"),
    ("num_heads", 0, "num_heads must be in"), ("img_size", 100_000, "img_size must be in"),
    ("decoder_depth", 1000, "decoder_depth must be in"), ("decoder_embed_dim", -1, "decoder_embed_dim must be in"),
    ("drop_path_rate", -0.1, r"\[0, 1\)"), ("head_dropout", 1.0, r"\[0, 1\)"), ("dense_dropout", math.nan, r"\[0, 1\)"),
    ("spectral_loss_weight", math.nan, "finite and >= 0"), ("spectral_loss_weight", -1.0, "finite and >= 0"),
    ("mlp_ratio", math.inf, "mlp_ratio"), ("pyramid_channels", (1, 2, 3, 10**6), "pyramid_channels"),
])
def test_out_of_bounds_values_are_refused_with_the_field(field, value, match):
    with pytest.raises(ValidationError, match=match):
        ModelConfig(**{field: value})


def test_too_many_tokens_are_refused():
    with pytest.raises(ValidationError, match="tokens, over the limit"):
        ModelConfig(img_size=2048, patch_size=2, embed_dim=96, num_heads=3)


def test_published_sizes_stay_within_bounds():
    from spectralgpt.models.registry import MODEL_CONFIGS, model_config

    for name in MODEL_CONFIGS:
        model_config(name)


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    return save_model(create_model("vit_tiny_patch8_64", num_classes=3, depth=1), tmp_path / "m")


def _forge(folder, **changes):
    path = folder / "config.json"
    meta = json.loads(path.read_text())
    meta["model"].update(changes)
    path.write_text(json.dumps(meta))


def _spy_real_builds(monkeypatch) -> list:
    """Models built for real (not on the meta device, where shapes cost no memory)."""
    real_build, built = ckpt.build_model, []

    def spy(cfg):
        if torch.get_default_device().type != "meta":
            built.append(cfg)
        return real_build(cfg)

    monkeypatch.setattr(ckpt, "build_model", spy)
    return built


def test_forged_huge_config_is_refused_before_building(folder, monkeypatch):
    built = _spy_real_builds(monkeypatch)
    _forge(folder, embed_dim=65536, depth=4096)
    with pytest.raises(CheckpointError, match="declares an invalid model: embed_dim must be in .*depth must be in"):
        load_model(folder)
    assert built == []


def test_config_that_does_not_match_the_weights_header_is_refused_before_building(folder, monkeypatch):
    built = _spy_real_builds(monkeypatch)
    _forge(folder, embed_dim=192, num_heads=3, depth=8)  # valid, larger, but not what the weights hold
    with pytest.raises(CheckpointError, match="do not fit its config.json .*blocks.1.* missing"):
        load_model(folder)
    assert built == []
    _forge(folder, embed_dim=96, depth=1)
    model, _ = load_model(folder)  # the real config still loads
    assert model.cfg.depth == 1


def test_header_is_read_without_loading_tensors(folder):
    shapes = ckpt.header_shapes(folder / "model.safetensors")
    assert shapes["patch_embed.proj.weight"] == (96, 1, 3, 8, 8)


def test_oversized_or_non_object_config_json_is_refused(folder):
    (folder / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(CheckpointError, match="not a SpectralGPT model config"):
        load_model(folder)
    (folder / "config.json").write_text(" " * (2 << 20))
    with pytest.raises(CheckpointError, match="over the .*-byte limit"):
        load_model(folder)
