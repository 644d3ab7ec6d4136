"""Scene classifier (single- or multi-label) on the SpectralGPT encoder: mean over tokens, norm, linear head."""

from __future__ import annotations

import torch
from torch import nn

from spectralgpt.models.config import ModelConfig
from spectralgpt.models.vit import SpectralViT


class SpectralClassifier(SpectralViT):
    """Logits (B, num_classes). Multi-label models (cfg.multilabel) are the same network trained with a
    sigmoid loss. By default the pretrained spatial and spectral position tables are used and all tokens are
    pooled; `legacy_joint_pos_embed` / `pool_skip_first_token` reproduce the published classifier."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.head_drop = nn.Dropout(cfg.head_dropout)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        self.init_weights()
        nn.init.trunc_normal_(self.head.weight, std=2e-5)  # near-zero logits at the start of fine-tuning

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.cfg.pool_skip_first_token:
            tokens = tokens[:, 1:]
        return self.norm(tokens.mean(dim=1))

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        tokens = self.encode(imgs, norm=False)  # the final norm is applied after pooling
        return self.head(self.head_drop(self.pool(tokens)))

    def embed(self, imgs: torch.Tensor) -> torch.Tensor:
        """Pooled embedding (B, D) that feeds the head."""
        return self.pool(self.encode(imgs, norm=False))
