"""SpectralGPT masked autoencoder: 90% of the spectral-spatial tokens are hidden; the 512-wide decoder
reconstructs every token's cube, and the loss adds a spectrally aggregated term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spectralgpt.models import pos_embed
from spectralgpt.models.config import ModelConfig
from spectralgpt.models.layers import Block, patchify, unpatchify
from spectralgpt.models.vit import SpectralViT


def random_masking(batch: int, tokens: int, mask_ratio: float, noise: torch.Tensor | None = None,
                   device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random masking over all tokens: keep the `int(N * (1 - r))` tokens with the smallest noise.

    Returns ids_keep (B, K), mask (B, N; 1 = removed, 0 = kept, original order) and ids_restore (B, N).
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    if noise is None:
        noise = torch.rand(batch, tokens, device=device)
    elif noise.shape != (batch, tokens):
        raise ValueError(f"noise must have shape {(batch, tokens)}, got {tuple(noise.shape)}")
    keep = int(tokens * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(batch, tokens, device=noise.device)
    mask[:, :keep] = 0
    return ids_shuffle[:, :keep], torch.gather(mask, 1, ids_restore), ids_restore


def _take(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows `ids` (B, K) of x (B or 1, N, C) -> (B, K, C)."""
    x = x.expand(ids.shape[0], -1, -1)
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class SpectralMAE(SpectralViT):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        dd = cfg.decoder_embed_dim
        self.decoder_embed = nn.Linear(cfg.embed_dim, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos_embed_spatial = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid, dd))
        self.decoder_pos_embed_temporal = nn.Parameter(torch.zeros(1, cfg.num_groups, dd))
        self.decoder_blocks = nn.ModuleList(
            Block(dd, cfg.decoder_num_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth))
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        self.decoder_pred = nn.Linear(dd, cfg.patch_dim)
        self.init_weights()
        nn.init.normal_(self.mask_token, std=0.02)

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        cubes = self.patch_embed.cubes(imgs)
        ids_keep, mask, ids_restore = random_masking(imgs.shape[0], cubes.shape[1], mask_ratio, noise,
                                                     imgs.device)
        # Only the kept cubes are embedded: the tokenizer is linear per cube, so this equals embedding all.
        x = self.patch_embed.embed_cubes(_take(cubes, ids_keep)) + _take(self.position_table(), ids_keep)
        x = self.norm(self.run_blocks(x, self.blocks))
        return x, mask, ids_restore, cubes

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(latent)
        b, k, dd = x.shape
        n = ids_restore.shape[1]
        x = torch.cat([x, self.mask_token.expand(b, n - k, dd)], dim=1)
        x = _take(x, ids_restore)
        x = x + pos_embed.combine(self.decoder_pos_embed_spatial, self.decoder_pos_embed_temporal)
        x = self.decoder_norm(self.run_blocks(x, self.decoder_blocks))
        return self.decoder_pred(x)

    def forward_loss(self, target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor):
        """loss1: MSE over masked tokens; loss3: MSE of cubes summed over the spectral groups, all positions."""
        cfg = self.cfg
        pred = pred.float()
        raw = target.float()
        if cfg.norm_pix_loss:
            mean = raw.mean(dim=-1, keepdim=True)
            var = raw.var(dim=-1, keepdim=True)
            target = (raw - mean) / (var + 1e-6) ** 0.5
        else:
            target = raw
        per_token = ((pred - target) ** 2).mean(dim=-1)
        loss1 = (per_token * mask).sum() / mask.sum().clamp_min(1)
        b, n, v = pred.shape
        t = cfg.num_groups
        summed_target = (raw if cfg.loss3_on_raw_targets else target).reshape(b, t, n // t, v).sum(dim=1)
        loss3 = F.mse_loss(pred.reshape(b, t, n // t, v).sum(dim=1), summed_target)
        return loss1 + cfg.spectral_loss_weight * loss3, {"loss_masked": loss1.detach(), "loss_spectral": loss3.detach()}

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.9, noise: torch.Tensor | None = None,
                return_terms: bool = False):
        """-> (loss, pred (B, T*L, u*p*p), mask (B, T*L)); with return_terms also the two loss terms."""
        latent, mask, ids_restore, cubes = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss, terms = self.forward_loss(cubes, pred, mask)
        return (loss, pred, mask, terms) if return_terms else (loss, pred, mask)

    def reconstruct(self, pred: torch.Tensor) -> torch.Tensor:
        """Decoder output back to an image (B, bands, H, W) (normalised space when norm_pix_loss)."""
        c = self.cfg
        return unpatchify(pred, c.t_patch_size, c.patch_size, c.num_bands, c.img_size, c.img_size)


__all__ = ["SpectralMAE", "random_masking", "patchify"]
