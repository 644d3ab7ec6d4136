"""Scene classifier (single- or multi-label) on the SpectralGPT encoder: a pool of the tokens, norm, linear head."""

from __future__ import annotations

import torch
from torch import nn

from spectralgpt.models.config import ModelConfig
from spectralgpt.models.vit import SpectralViT


class SpectralClassifier(SpectralViT):
    """Logits (B, num_classes). Multi-label models (cfg.multilabel) are the same network trained with a
    sigmoid loss. By default the pretrained spatial and spectral position tables are used and all tokens are
    pooled (`pool: mean`; `pool: spectral` pools space per spectral group and concatenates the groups);
    `legacy_joint_pos_embed` / `pool_skip_first_token` reproduce the published classifier."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.head_drop = nn.Dropout(cfg.head_dropout)
        self.head = nn.Linear(self.pooled_dim, cfg.num_classes)
        self.init_weights()
        nn.init.trunc_normal_(self.head.weight, std=2e-5)  # near-zero logits at the start of fine-tuning

    @property
    def pooled_dim(self) -> int:
        """Features the head sees: embed_dim, or num_groups x embed_dim for the spectral pool."""
        return self.cfg.embed_dim * (self.cfg.num_groups if self.cfg.pool == "spectral" else 1)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.cfg.pool == "spectral":  # tokens are ordered group-major: (B, T * L, D) -> (B, T, D) -> (B, T * D)
            b, _, d = tokens.shape
            return self.norm(tokens.reshape(b, self.cfg.num_groups, -1, d).mean(dim=2)).flatten(1)
        if self.cfg.pool_skip_first_token:
            tokens = tokens[:, 1:]
        return self.norm(tokens.mean(dim=1))

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        tokens = self.encode(imgs, norm=False)  # the final norm is applied after pooling
        return self.head(self.head_drop(self.pool(tokens)))

    def embed(self, imgs: torch.Tensor) -> torch.Tensor:
        """Pooled embedding (B, pooled_dim) that feeds the head."""
        return self.pool(self.encode(imgs, norm=False))
