"""The UPerNet dense head (`head: upernet`): output shapes for several layer sets, the layer features it reads,
its configuration rules, published-key compatibility of its encoder, and a frozen-encoder training whose loss
falls."""

import pytest
import torch
import torch.nn.functional as F

from spectralgpt.models import create_model, load_model, load_pretrained, model_config, save_model
from spectralgpt.models.checkpoint import ENCODER_PREFIXES
from spectralgpt.models.config import scale_layers
from spectralgpt.models.upernet import UPerNetChangeDetector, UPerNetSegmenter, encoder_layers, level_scales
from spectralgpt.protocols.dense import freeze_encoder_weights

TINY = dict(img_size=16, embed_dim=48, num_heads=3, fpn_channels=16)  # 4 blocks, a 2 x 2 grid


@pytest.mark.parametrize("layers", [None, (3,), (1, 3), (0, 2, 3), (0, 1, 2, 3), (0, 0, 1, 2, 3), (0, 1, 1, 2, 3, 3)])
def test_output_shapes_for_several_layer_sets(layers):
    torch.manual_seed(0)
    seg = create_model("seg_vit_tiny_patch8_64", head="upernet", upernet_layers=layers, num_classes=5, **TINY)
    cd = create_model("cd_vit_tiny_patch8_64", head="upernet", upernet_layers=layers, **TINY)
    assert isinstance(seg, UPerNetSegmenter) and isinstance(cd, UPerNetChangeDetector)
    x1, x2 = torch.randn(2, 12, 16, 16), torch.randn(2, 12, 16, 16)
    assert seg(x1).shape == (2, 5, 16, 16)
    assert cd(x1, x2).shape == (2, 2, 16, 16)
    n = len(seg.cfg.feature_layers)
    assert len(seg.decode_head.neck) == n and len(seg.decode_head.lateral) == n - 1
    feats = seg.forward_features(x1, layers=seg.cfg.feature_layers)
    assert [tuple(f.shape) for f in feats] == [(2, 4, 4, 48)] * n  # (B, T groups, L cells, D) per layer
    maps = [neck(m) for neck, m in zip(seg.decode_head.neck, seg.level_maps(x1))]
    assert [m.shape[-1] for m in maps] == [int(2 * s) for s in level_scales(n)]  # x4, x2, x1, x0.5 of the grid


def test_default_layers_are_pangaea_s_scaled_to_the_depth():
    assert scale_layers((3, 5, 7, 11), 12) == (3, 5, 7, 11)
    assert scale_layers((3, 5, 7, 11), 4) == (0, 1, 2, 3)
    assert scale_layers((3, 5, 7, 11), 8) == (2, 3, 4, 7)
    assert scale_layers((3, 5, 7, 11), 24) == (7, 11, 15, 23)
    assert model_config("seg_vit_base_patch8_128", head="upernet").feature_layers == (3, 5, 7, 11)
    assert model_config("seg_vit_tiny_patch8_64", head="upernet").feature_layers == (0, 1, 2, 3)
    assert model_config("seg_vit_base_patch8_128", head="upernet", upernet_layers=(11,)).feature_layers == (11,)
    assert level_scales(4) == (4.0, 2.0, 1.0, 0.5) and level_scales(1) == (1.0,)


def test_layer_features_are_the_blocks_outputs():
    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_patch8_64", img_size=32).eval()
    x = torch.randn(2, 12, 32, 32)
    with torch.no_grad():
        last, first = encoder_layers(model, x, (3, 0))
        assert torch.allclose(last, model.encode(x), atol=1e-6)  # the last block, through the final norm
        tokens = model.patch_embed(x) + model.position_table()
        assert torch.allclose(first, model.norm(model.blocks[0](tokens)), atol=1e-6)
        raw = encoder_layers(model, x, (1,), norm=False)[0]
        assert torch.allclose(raw, model.blocks[1](model.blocks[0](tokens)), atol=1e-6)
    with pytest.raises(ValueError, match=r"block indices in \[0, 3\]"):
        encoder_layers(model, x, (4,))


@pytest.mark.parametrize("overrides,message", [
    ({"kind": "classifier"}, "head 'upernet' is a dense head"),
    ({"upernet_layers": (1, 4)}, r"upernet_layers must be 1 to 6 block indices in \[0, 3\]"),
    ({"upernet_layers": ()}, "upernet_layers must be 1 to 6"),
    ({"upernet_layers": (3, 1)}, "from shallow to deep"),
])
def test_bad_head_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        create_model("seg_vit_tiny_patch8_64", head="upernet", **{"img_size": 32, **overrides})


def test_pretrained_encoder_loads_and_the_decoder_lives_under_decode_head(tmp_path):
    torch.manual_seed(0)
    mae = create_model("mae_vit_tiny_patch8_64", img_size=64)
    seg = create_model("seg_vit_tiny_patch8_64", head="upernet", img_size=32, num_classes=3)
    report = load_pretrained(seg, mae.state_dict())
    assert not [k for k in report.missing if k.startswith(ENCODER_PREFIXES)]
    assert [k for k, _, _ in report.resized] == ["pos_embed_spatial"]  # 8 x 8 grid interpolated to 4 x 4
    assert all(k.startswith(ENCODER_PREFIXES + ("decode_head.",)) for k in seg.state_dict())
    assert torch.equal(seg.blocks[2].mlp.fc1.weight, mae.blocks[2].mlp.fc1.weight)
    trainable, frozen = freeze_encoder_weights(seg)
    assert frozen == sum(p.numel() for k, p in seg.named_parameters() if k.startswith(ENCODER_PREFIXES))
    assert trainable == sum(p.numel() for k, p in seg.named_parameters() if k.startswith("decode_head."))
    save_model(seg, tmp_path / "m")
    back, _ = load_model(tmp_path / "m")
    x = torch.randn(1, 12, 32, 32)
    with torch.no_grad():
        assert isinstance(back, UPerNetSegmenter) and torch.allclose(back(x), seg.eval()(x))


def test_frozen_encoder_upernet_trains_and_its_loss_falls():
    """A mask that the spectra decide (band 3 above band 7): only the decoder learns, the encoder stays put."""
    torch.manual_seed(0)
    model = create_model("seg_vit_tiny_patch8_64", head="upernet", num_classes=2, dense_dropout=0.0, **TINY)
    freeze_encoder_weights(model)
    encoder_before = model.blocks[0].attn.q.weight.clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 12, 16, 16, generator=g)
    blobs = F.avg_pool2d(torch.rand(4, 1, 16, 16, generator=g), 5, stride=1, padding=2)
    x[:, 3:4] = blobs
    mask = (blobs[:, 0] > blobs.mean()).long()
    losses = []
    model.train()
    for _ in range(12):
        loss = F.cross_entropy(model(x), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    assert torch.equal(model.blocks[0].attn.q.weight, encoder_before)
