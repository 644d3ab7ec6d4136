"""The SpectralGPT encoder: 3-D tokens, spatial + spectral position embeddings, pre-norm transformer blocks.

Every model (MAE, classifier, dense heads) subclasses `SpectralViT`, so encoder parameters sit at the top
level of the state dict with the published key names (`patch_embed.*`, `pos_embed_spatial`,
`pos_embed_temporal`, `blocks.N.*`, `norm.*`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from spectralgpt.models import pos_embed
from spectralgpt.models.config import ModelConfig
from spectralgpt.models.layers import Block, PatchEmbed3D


class SpectralViT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.patch_embed = PatchEmbed3D(cfg.img_size, cfg.patch_size, cfg.num_bands, cfg.t_patch_size, d)
        if cfg.legacy_joint_pos_embed:
            self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, d))  # zero init, as published
        else:
            self.pos_embed_spatial = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid, d))
            self.pos_embed_temporal = nn.Parameter(torch.zeros(1, cfg.num_groups, d))
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(Block(d, cfg.num_heads, cfg.mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(d, eps=1e-6)

    # -- initialisation (as published: xavier Linear, LN 1/0, trunc-normal 0.02 position tables) --
    def init_weights(self) -> None:
        for name in ("pos_embed_spatial", "pos_embed_temporal", "decoder_pos_embed_spatial",
                     "decoder_pos_embed_temporal"):
            if hasattr(self, name):
                nn.init.trunc_normal_(getattr(self, name), std=0.02)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def position_table(self) -> torch.Tensor:
        """(1, T*L, D): spatial[s] + spectral[t] (or the legacy joint table)."""
        if self.cfg.legacy_joint_pos_embed:
            return self.pos_embed
        return pos_embed.combine(self.pos_embed_spatial, self.pos_embed_temporal)

    def run_blocks(self, x: torch.Tensor, blocks: nn.ModuleList) -> torch.Tensor:
        for blk in blocks:
            if self.cfg.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def encode(self, imgs: torch.Tensor, norm: bool = True) -> torch.Tensor:
        """All tokens, no masking: (B, bands, H, W) -> (B, T*L, D)."""
        x = self.patch_embed(imgs) + self.position_table()
        x = self.run_blocks(x, self.blocks)
        return self.norm(x) if norm else x

    def forward_features(self, imgs: torch.Tensor) -> torch.Tensor:
        """Encoder features without masking, as a (B, T, L, D) spectral-group x spatial grid."""
        b = imgs.shape[0]
        return self.encode(imgs).reshape(b, self.cfg.num_groups, self.cfg.grid * self.cfg.grid, -1)
