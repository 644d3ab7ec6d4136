"""Dense heads on the SpectralGPT encoder: semantic segmentation and siamese change detection.

Design (reference, section 4): the last block's tokens (B, T, L, D) are fused over the T spectral groups with
a learned Linear(T -> 1) into one (B, D, h, w) map; four parallel branches turn it into a pseudo-pyramid at
x8, x4, x2 and x1 (1x1 conv + GroupNorm + GELU + transposed conv); an UPerNet-style head (pyramid pooling on
the coarsest level, top-down FPN with lateral convs, fusion of all levels) and a 3x3 classifier produce
full-resolution logits.

This is the default dense head (`ModelConfig.head: pyramid`); ``head: upernet`` builds the PANGAEA-style UPerNet on
intermediate encoder layers instead (`spectralgpt.models.upernet`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spectralgpt.models.config import ModelConfig
from spectralgpt.models.layers import Dropout
from spectralgpt.models.vit import SpectralViT

UPSCALES = (8, 4, 2, 1)
PPM_BINS = (1, 2, 3, 6)


def conv_gn_gelu(cin: int, cout: int, groups: int, dropout: float = 0.0) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 1), nn.GroupNorm(math.gcd(groups, cout), cout), nn.GELU()]
    if dropout:
        layers.append(Dropout(dropout))
    return nn.Sequential(*layers)


class PseudoPyramid(nn.Module):
    """Four maps at x8, x4, x2, x1 the encoder resolution with `channels` channels each. The x8 branch is
    twice as wide before its transposed conv (512 -> 256 in the published head)."""

    def __init__(self, dim: int, channels: tuple[int, ...], dropout: float):
        super().__init__()
        branches = []
        for c, up in zip(channels, UPSCALES):
            hidden = 2 * c if up == 8 else c
            layers = list(conv_gn_gelu(dim, hidden, 32))
            if up > 1:
                layers.append(nn.ConvTranspose2d(hidden, c, up, stride=up))
            if dropout:
                layers.append(Dropout(dropout))
            branches.append(nn.Sequential(*layers))
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [b(x) for b in self.branches]


class UPerHead(nn.Module):
    """Pyramid pooling (adaptive max pools) on the coarsest level + top-down FPN + fusion of all levels."""

    def __init__(self, in_channels: list[int], ch: int, num_classes: int, dropout: float):
        super().__init__()
        top = in_channels[-1]
        self.ppm = nn.ModuleList(nn.Sequential(nn.AdaptiveMaxPool2d(b), nn.Conv2d(top, ch, 1)) for b in PPM_BINS)
        self.ppm_out = conv_gn_gelu(top + len(PPM_BINS) * ch, ch, 16, dropout)
        self.lateral = nn.ModuleList(conv_gn_gelu(c, ch, 16, dropout) for c in in_channels[:-1])
        self.fpn_out = nn.ModuleList(conv_gn_gelu(ch, ch, 16, dropout) for _ in in_channels[:-1])
        self.fuse = conv_gn_gelu(len(in_channels) * ch, ch, 16, dropout)
        self.cls_seg = nn.Conv2d(ch, num_classes, 3, padding=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        top = feats[-1]
        pooled = [F.interpolate(p(top), size=top.shape[-2:], mode="bilinear", align_corners=False) for p in self.ppm]
        x = self.ppm_out(torch.cat([top, *pooled], dim=1))
        outs = [x]
        for i in reversed(range(len(feats) - 1)):
            lat = self.lateral[i](feats[i])
            x = lat + F.interpolate(x, size=lat.shape[-2:], mode="bilinear", align_corners=False)
            outs.insert(0, self.fpn_out[i](x))
        return self.cls_seg(self.fused(outs))

    def fused(self, outs: list[torch.Tensor]) -> torch.Tensor:
        """`fuse` over all levels resized to the finest and stacked as channels, computed without building that
        stack: its 1x1 conv splits into one per level, and a 1x1 conv commutes with a bilinear resize (a per-pixel
        linear map against a per-channel weighted sum whose weights add up to 1), so each coarse level is projected
        first and resized after. The same map up to rounding; on the demo's segmentation step (1 thread) x1.16-x1.18
        faster (`benchmarks/dense_step.py`)."""
        conv, *rest = self.fuse
        weights = conv.weight.split([o.shape[1] for o in outs], dim=1)
        size = outs[0].shape[-2:]
        x = F.conv2d(outs[0], weights[0], conv.bias)
        for o, w in zip(outs[1:], weights[1:]):
            x = x + F.interpolate(F.conv2d(o, w), size=size, mode="bilinear", align_corners=False)
        for layer in rest:
            x = layer(x)
        return x


class _DenseModel(SpectralViT):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.fc = nn.Linear(cfg.num_groups, 1)  # fuses the spectral groups
        self.pyramid = PseudoPyramid(cfg.embed_dim, cfg.pyramid_channels, cfg.dense_dropout)
        self.decode_head = UPerHead(list(cfg.pyramid_channels), cfg.fpn_channels,
                                    cfg.num_classes, cfg.dense_dropout)
        self.init_weights()

    def feature_map(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, bands, H, W) -> group-fused encoder map (B, D, H/p, W/p)."""
        c = self.cfg
        x = self.encode(imgs, norm=not c.dense_head_legacy)
        x = x.reshape(x.shape[0], c.num_groups, c.grid * c.grid, c.embed_dim).permute(0, 2, 3, 1)
        x = self.fc(x).squeeze(-1)  # (B, L, D)
        return x.transpose(1, 2).reshape(x.shape[0], c.embed_dim, c.grid, c.grid)

    def head(self, fmap: torch.Tensor) -> torch.Tensor:
        logits = self.decode_head(self.pyramid(fmap))
        size = (self.cfg.img_size, self.cfg.img_size)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


class SpectralSegmenter(_DenseModel):
    """Per-pixel logits (B, num_classes, H, W)."""

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_map(imgs))


class SpectralChangeDetector(_DenseModel):
    """Siamese encoder with shared weights; the head sees the difference of the two dates' feature maps.
    Returns per-pixel logits (B, num_classes, H, W) (class 1 = change)."""

    def forward(self, imgs1: torch.Tensor, imgs2: torch.Tensor) -> torch.Tensor:
        if imgs1.shape != imgs2.shape:
            raise ValueError(f"the two dates differ in shape: {tuple(imgs1.shape)} vs {tuple(imgs2.shape)}")
        f1, f2 = self.feature_map(torch.cat([imgs1, imgs2])).chunk(2)  # one encoder pass for both dates
        return self.head(f1 - f2)
