"""UPerNet on intermediate encoder layers: the PANGAEA-style dense evaluation head (``head: upernet``).

Design (Xiao et al. 2018, "Unified Perceptual Parsing", as PANGAEA uses it for ViT encoders):

1. **Layer features.** The outputs of encoder blocks ``cfg.feature_layers`` (0-based; PANGAEA's (3, 5, 7, 11)
   for a 12-block ViT-Base, scaled to other depths by `config.scale_layers`: (0, 1, 2, 3) for the 4-block tiny
   model), each passed through the encoder's final LayerNorm (as timm's ``forward_intermediates(norm=True)``),
   are tokens (B, T*L, D): T spectral groups on an h x w grid.
2. **Maps.** Per level the T spectral groups are fused by a learned weighted sum (``Linear(T -> 1)``, as the
   published SpectralGPT dense head fuses them) into one (B, D, h, w) map.
3. **Neck.** The maps become a pyramid by rescaling level j of n by 2^(n-2-j): x4, x2, x1, x0.5 for four levels
   (two / one 2x2 transposed convolutions with GroupNorm + GELU between them, identity, 2x2 max pooling), as
   mmsegmentation's / PANGAEA's ``Feature2Pyramid``. One level is kept at x1.
4. **Decoder.** A pyramid pooling module on the coarsest level (adaptive average pools to 1, 2, 3 and 6 bins,
   1x1 conv each, upsampled and concatenated with the level, 3x3 bottleneck), lateral 1x1 convs on the others,
   a top-down pathway (upsample + add), 3x3 FPN convs, every level upsampled to the finest and fused by a 3x3
   conv, dropout and a 1x1 classifier; logits are resized bilinearly to the input size.

GroupNorm stands where the original has (Sync)BatchNorm: the head then trains the same at any batch size (the
PPM's 1x1 bin has one value per channel and image, which BatchNorm cannot normalise at batch size 1).

Change detection is siamese: both dates go through the shared encoder in one pass and the decoder sees the
per-level differences of their maps, as the pyramid change head does.

Every decoder parameter lives under ``decode_head.`` (the classifier is ``decode_head.cls_seg``), so fine-tuning
with a frozen encoder (``finetune.<task>.mode: linear_probe``) trains exactly the decoder, and a checkpoint
with another class count loads with only the classifier skipped. The encoder is the unchanged `SpectralViT`:
published and pretrained weights load as into any other model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spectralgpt.models.config import ModelConfig
from spectralgpt.models.vit import SpectralViT

PPM_BINS = (1, 2, 3, 6)


def level_scales(n: int) -> tuple[float, ...]:
    """The neck's rescale factor per level, shallow to deep: 2^(n-2-j); (4, 2, 1, 0.5) for four levels, (1,) for one."""
    return (1.0,) if n == 1 else tuple(2.0 ** (n - 2 - j) for j in range(n))


def encoder_layers(encoder: SpectralViT, imgs: torch.Tensor, layers, norm: bool = True) -> list[torch.Tensor]:
    """Tokens (B, T*L, D) after each block in `layers` (0-based block outputs, any order, repeats allowed), in the
    order asked; with `norm`, each through the encoder's final LayerNorm. Blocks after the deepest one asked for
    are not run. Works on any SpectralGPT model (MAE, classifier, dense) and honours its activation
    checkpointing, since the blocks run through the encoder's own `run_blocks`."""
    wanted = sorted(set(int(i) for i in layers))
    depth = len(encoder.blocks)
    if not wanted or wanted[0] < 0 or wanted[-1] >= depth:
        raise ValueError(f"layers {list(layers)} must be block indices in [0, {depth - 1}]")
    x = encoder.patch_embed(imgs) + encoder.position_table()
    found, start = {}, 0
    for i in wanted:
        x = encoder.run_blocks(x, encoder.blocks[start:i + 1])
        found[i], start = (encoder.norm(x) if norm else x), i + 1
    return [found[int(i)] for i in layers]


def _groups(channels: int, wanted: int = 32) -> int:
    """GroupNorm groups: up to `wanted`, at least two channels each (one channel of a 1 x 1 pooled map would be
    normalised to 0)."""
    return math.gcd(wanted, channels // 2) if channels > 1 else 1


def conv_norm_act(cin: int, cout: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.GroupNorm(_groups(cout), cout), nn.GELU())


def _rescale(dim: int, scale: float) -> nn.Module:
    if scale == 1:
        return nn.Identity()
    if scale < 1:
        return nn.MaxPool2d(kernel_size=round(1 / scale), stride=round(1 / scale))
    layers: list[nn.Module] = []
    for k in range(int(round(math.log2(scale)))):
        if k:
            layers += [nn.GroupNorm(_groups(dim), dim), nn.GELU()]
        layers.append(nn.ConvTranspose2d(dim, dim, 2, stride=2))
    return nn.Sequential(*layers)


class UPerNetDecoder(nn.Module):
    """Group fusion + neck + UPerNet head: level tokens [(B, T*L, D)] -> logits (B, num_classes, H', W')."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, ch, n = cfg.embed_dim, cfg.fpn_channels, len(cfg.feature_layers)
        self.num_groups, self.grid = cfg.num_groups, cfg.grid
        self.fuse_groups = nn.ModuleList(nn.Linear(cfg.num_groups, 1) for _ in range(n))
        self.neck = nn.ModuleList(_rescale(d, s) for s in level_scales(n))
        self.ppm = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_norm_act(d, ch)) for b in PPM_BINS)
        self.ppm_bottleneck = conv_norm_act(d + len(PPM_BINS) * ch, ch, 3)
        self.lateral = nn.ModuleList(conv_norm_act(d, ch) for _ in range(n - 1))
        self.fpn = nn.ModuleList(conv_norm_act(ch, ch, 3) for _ in range(n - 1))
        self.fpn_bottleneck = conv_norm_act(n * ch, ch, 3)
        self.dropout = nn.Dropout2d(cfg.dense_dropout)
        self.cls_seg = nn.Conv2d(ch, cfg.num_classes, 1)

    def maps(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """Level tokens -> group-fused maps (B, D, h, w), before the neck."""
        out = []
        for tokens, fuse in zip(levels, self.fuse_groups):
            b, _, d = tokens.shape
            x = tokens.reshape(b, self.num_groups, self.grid * self.grid, d).permute(0, 2, 3, 1)
            x = fuse(x).squeeze(-1)  # (B, L, D)
            out.append(x.transpose(1, 2).reshape(b, d, self.grid, self.grid))
        return out

    def decode(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Group-fused maps (after any siamese difference) -> logits at the finest level's resolution."""
        feats = [neck(m) for neck, m in zip(self.neck, maps)]
        top = feats[-1]
        pooled = [F.interpolate(p(top), size=top.shape[-2:], mode="bilinear", align_corners=False) for p in self.ppm]
        x = self.ppm_bottleneck(torch.cat([top, *pooled], dim=1))
        outs = [x]
        for i in reversed(range(len(feats) - 1)):
            lat = self.lateral[i](feats[i])
            x = lat + F.interpolate(x, size=lat.shape[-2:], mode="bilinear", align_corners=False)
            outs.insert(0, self.fpn[i](x))
        size = outs[0].shape[-2:]
        outs = [outs[0]] + [F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in outs[1:]]
        return self.cls_seg(self.dropout(self.fpn_bottleneck(torch.cat(outs, dim=1))))

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        return self.decode(self.maps(levels))


class _UPerNetModel(SpectralViT):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.decode_head = UPerNetDecoder(cfg)
        self.init_weights()

    def forward_features(self, imgs: torch.Tensor, layers=None):
        """Without `layers`: the last block's features (B, T, L, D), as every SpectralGPT model. With `layers`
        (0-based block outputs): one (B, T, L, D) tensor per layer, after the final norm."""
        if layers is None:
            return super().forward_features(imgs)
        c = self.cfg
        return [t.reshape(t.shape[0], c.num_groups, c.grid * c.grid, -1) for t in encoder_layers(self, imgs, layers)]

    def level_maps(self, imgs: torch.Tensor) -> list[torch.Tensor]:
        return self.decode_head.maps(encoder_layers(self, imgs, self.cfg.feature_layers))

    def _full_size(self, logits: torch.Tensor) -> torch.Tensor:
        size = (self.cfg.img_size, self.cfg.img_size)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


class UPerNetSegmenter(_UPerNetModel):
    """Per-pixel logits (B, num_classes, H, W) from a UPerNet over encoder layers `cfg.feature_layers`."""

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self._full_size(self.decode_head.decode(self.level_maps(imgs)))


class UPerNetChangeDetector(_UPerNetModel):
    """Siamese change detection: per-level differences of the two dates' maps into the UPerNet decoder.
    Returns per-pixel logits (B, num_classes, H, W) (class 1 = change)."""

    def forward(self, imgs1: torch.Tensor, imgs2: torch.Tensor) -> torch.Tensor:
        if imgs1.shape != imgs2.shape:
            raise ValueError(f"the two dates differ in shape: {tuple(imgs1.shape)} vs {tuple(imgs2.shape)}")
        both = self.level_maps(torch.cat([imgs1, imgs2]))  # one encoder pass for both dates
        return self._full_size(self.decode_head.decode([a - b for a, b in (m.chunk(2) for m in both)]))
