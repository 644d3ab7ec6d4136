"""The model family: published key names and shapes, parameter counts, shapes of every head, config errors."""

import json

import pytest
import torch
from pydantic import ValidationError

from spectralgpt.models import MODEL_CONFIGS, create_model, model_config, patchify, unpatchify


def shapes(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def official(request):
    from tests.conftest import REFERENCE

    path = REFERENCE / "official_state_dict_shapes.json"
    if not path.exists():
        pytest.skip("reference shapes not available")
    return json.loads(path.read_text())


def test_mae_state_dict_equals_published(official):
    with torch.device("meta"):
        model = create_model("mae_vit_base_patch8_128")
    assert shapes(model) == official["mae_vit_base_patch8_128"]


def test_classifier_state_dict_matches_published(official):
    published = official["vit_base_patch8_128(num_classes=10)"]
    with torch.device("meta"):
        legacy = create_model("vit_base_patch8_128", num_classes=10, legacy_joint_pos_embed=True)
        fixed = create_model("vit_base_patch8_128", num_classes=10)
    assert shapes(legacy) == published
    ours = shapes(fixed)
    expected = {k: v for k, v in published.items() if k != "pos_embed"}
    expected["pos_embed_spatial"] = [1, 256, 768]
    expected["pos_embed_temporal"] = [1, 4, 768]
    assert ours == expected


@pytest.mark.parametrize("name,count", [
    ("mae_vit_base_patch8_96", 98_496_960), ("mae_vit_base_patch8_128", 98_640_320),
    ("mae_vit_base_patch8_2tensor_128", 98_560_896), ("mae_vit_large_patch8_96", 315_970_752),
    ("mae_vit_large_patch8_128", 316_142_784), ("mae_vit_huge_patch8_96", 643_558_336),
    ("mae_vit_huge_patch8_128", 643_759_040),
])
def test_mae_parameter_counts(name, count):
    with torch.device("meta"):
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.parametrize("name,count", [
    ("vit_base_patch8", 85_654_282), ("vit_base_patch8_128", 85_998_346), ("vit_base_patch16_128", 85_850_890),
    ("vit_base_patch8_channel10", 86_145_802), ("vit_large_patch8_128", 303_567_882),
    ("vit_huge_patch8_128", 631_005_450), ("vit_base_patch8_120", 85_827_082),
])
def test_published_classifier_parameter_counts(name, count):
    with torch.device("meta"):
        model = create_model(name, num_classes=10, legacy_joint_pos_embed=True)
    assert sum(p.numel() for p in model.parameters()) == count


def test_every_named_config_builds():
    for name in MODEL_CONFIGS:
        with torch.device("meta"):
            create_model(name)


def test_tiny_heads_shapes():
    torch.manual_seed(0)
    x = torch.rand(2, 12, 64, 64)
    loss, pred, mask = create_model("mae_vit_tiny_patch8_64")(x)
    assert loss.ndim == 0 and pred.shape == (2, 256, 192) and mask.shape == (2, 256)
    assert int(mask[0].sum()) == 256 - int(256 * 0.1)
    assert create_model("vit_tiny_patch8_64", num_classes=19, multilabel=True)(x).shape == (2, 19)
    assert create_model("seg_vit_tiny_patch8_64", num_classes=5)(x).shape == (2, 5, 64, 64)
    assert create_model("cd_vit_tiny_patch8_64")(x, x.flip(0)).shape == (2, 2, 64, 64)


def test_dense_fusion_equals_the_published_concatenation():
    """The head fuses its four levels by projecting each before resizing it (`UPerHead.fused`): the same map, and
    the same gradients, as resizing all to the finest level, concatenating and applying the 1x1 conv, as published."""
    from spectralgpt.models.reference import stacked_fusion

    torch.manual_seed(0)
    head = create_model("seg_vit_tiny_patch8_64", num_classes=5, dense_dropout=0.1).decode_head.eval()  # no dropout
    levels = [torch.randn(2, 32, 64 // s, 64 // s, requires_grad=True) for s in (1, 2, 4, 8)]
    fused = head.fused(levels)
    published = stacked_fusion(head, levels)
    assert fused.shape == (2, 32, 64, 64) and torch.allclose(fused, published, atol=1e-5)
    probe = torch.randn_like(fused)
    ours = torch.autograd.grad((fused * probe).sum(), [*levels, head.fuse[0].weight])
    theirs = torch.autograd.grad((published * probe).sum(), [*levels, head.fuse[0].weight])
    assert all((a - b).abs().max() <= 1e-5 * b.abs().max() for a, b in zip(ours, theirs))  # fp32 rounding


def test_change_detector_sees_only_the_difference():
    model = create_model("cd_vit_tiny_patch8_64").eval()
    a, b = torch.rand(1, 12, 64, 64), torch.rand(1, 12, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(a, a), model(b, b), atol=1e-5)  # no change -> same map whatever the scene
        assert not torch.allclose(model(a, b), model(a, a), atol=1e-5)


def test_pool_skip_first_token_is_the_published_quirk():
    torch.manual_seed(0)
    fixed = create_model("vit_tiny_patch8_64").eval()
    legacy = create_model("vit_tiny_patch8_64", pool_skip_first_token=True).eval()
    legacy.load_state_dict(fixed.state_dict())
    x = torch.rand(2, 12, 64, 64)
    tokens = fixed.encode(x, norm=False)
    with torch.no_grad():
        assert torch.allclose(fixed.embed(x), fixed.norm(tokens.mean(1)), atol=1e-6)
        assert torch.allclose(legacy.embed(x), fixed.norm(tokens[:, 1:].mean(1)), atol=1e-6)


def test_spectral_pool_keeps_each_spectral_group_apart():
    """pool: spectral = per spectral group, a mean over space, normed, the groups side by side; the published
    mean over all tokens is the default, and the pretrained encoder loads into either (only the head differs)."""
    torch.manual_seed(0)
    mean = create_model("vit_tiny_patch8_64", num_classes=5).eval()
    spectral = create_model("vit_tiny_patch8_64", num_classes=5, pool="spectral").eval()
    assert mean.cfg.pool == "mean" and tuple(mean.head.weight.shape) == (5, 96)
    assert tuple(spectral.head.weight.shape) == (5, 4 * 96)  # 12 bands / 3 per token = 4 groups
    encoder = {k: v for k, v in mean.state_dict().items() if not k.startswith("head.")}
    assert not spectral.load_state_dict(encoder, strict=False).unexpected_keys
    x = torch.rand(2, 12, 64, 64)
    with torch.no_grad():
        tokens = spectral.encode(x, norm=False)  # (B, groups x space, D), group-major
        by_group = spectral.norm(tokens.reshape(2, 4, 64, 96).mean(2))
        assert torch.allclose(spectral.embed(x), by_group.flatten(1), atol=1e-6)
        assert spectral(x).shape == (2, 5)
        # the pooled features tell the groups apart: swapping two groups' tokens changes them
        swapped = tokens.reshape(2, 4, 64, 96)[:, [1, 0, 2, 3]].reshape(2, 256, 96)
        assert not torch.allclose(spectral.pool(swapped), spectral.pool(tokens), atol=1e-4)
        assert torch.allclose(mean.pool(swapped), mean.pool(tokens), atol=1e-5)  # the mean cannot
    with pytest.raises(ValidationError, match="pool_skip_first_token"):
        model_config("vit_tiny_patch8_64", pool="spectral", pool_skip_first_token=True)


def test_features_without_masking():
    model = create_model("mae_vit_tiny_patch8_64")
    feats = model.forward_features(torch.rand(3, 12, 64, 64))
    assert feats.shape == (3, 4, 64, 96)


def test_patchify_roundtrip_and_equals_conv3d():
    x = torch.rand(2, 12, 32, 32)
    tokens = patchify(x, 3, 8)
    assert tokens.shape == (2, 4 * 16, 192)
    assert torch.equal(unpatchify(tokens, 3, 8, 12, 32, 32), x)
    # token t*L + s holds bands 3t..3t+2 of spatial patch s, values in (band, row, col) order
    assert torch.equal(tokens[1, 2 * 16 + 5].reshape(3, 8, 8), x[1, 6:9, 8:16, 8:16])
    model = create_model("mae_vit_tiny_patch8_64", img_size=32)
    conv = model.patch_embed.proj(x.unsqueeze(1)).flatten(3).permute(0, 2, 3, 1).flatten(1, 2)
    assert torch.allclose(model.patch_embed(x), conv, atol=1e-5)


@pytest.mark.parametrize("overrides,field", [
    ({"img_size": 100}, "patch_size"), ({"num_bands": 13}, "t_patch_size"), ({"num_heads": 5}, "num_heads"),
    ({"drop_path_rate": 1.5}, "drop_path_rate"), ({"bands": ("B1", "B2")}, "num_bands"),
    ({"not_a_field": 1}, "not_a_field"), ({"bands": ["B1"] * 12}, "more than once"),
])
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises((ValidationError, ValueError), match=field):
        model_config("mae_vit_tiny_patch8_64", **overrides)


def test_bad_inputs_are_named():
    model = create_model("mae_vit_tiny_patch8_64")
    with pytest.raises(ValueError, match="13"):
        model(torch.rand(1, 13, 64, 64))
    with pytest.raises(ValueError, match="64x64"):
        model(torch.rand(1, 12, 96, 96))
    with pytest.raises(ValueError, match="mask_ratio"):
        model(torch.rand(1, 12, 64, 64), mask_ratio=1.0)
    with pytest.raises(KeyError, match="unknown model"):
        create_model("vit_gigantic")


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = create_model("mae_vit_tiny_patch8_64")
    b = create_model("mae_vit_tiny_patch8_64", grad_checkpointing=True)
    b.load_state_dict(a.state_dict())
    x, noise = torch.rand(2, 12, 64, 64), torch.rand(2, 256)
    for m in (a, b):
        m(x, 0.9, noise)[0].backward()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
