"""A deliberately plain re-statement of the published SpectralGPT MAE formulas (reference sections 1.1-1.7).

It exists to check the fast model (`SpectralMAE`) and as the baseline of `benchmarks/train_step.py`: Conv3d
over all tokens, position tables gathered after masking, separate q/k/v matmuls with an explicit softmax, the
loss written with explicit reshapes, fp32. Its parameter names equal the fast model's, so one state dict
loads into both. Do not use it for training.

`stacked_fusion` restates the published dense head's fusion of its pyramid levels the same way, for
`UPerHead.fused` (tests/unit/test_models.py, benchmarks/dense_step.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spectralgpt.models.config import ModelConfig


class _Attn(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x):
        b, n, d = x.shape
        h = self.heads

        def split(t):
            return t.reshape(b, n, h, d // h).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        attn = (q @ k.transpose(-2, -1)) * (d // h) ** -0.5
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), _Attn(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        k = (cfg.t_patch_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(1, cfg.embed_dim, kernel_size=k, stride=k)

    def forward(self, x):
        x = self.proj(x.unsqueeze(1))  # (B, D, T, h, w)
        b, d, t, h, w = x.shape
        return x.flatten(3).permute(0, 2, 3, 1).reshape(b, t * h * w, d)  # (B, T*L, D)


class ReferenceMAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = c = cfg
        L, T, D, Dd = c.grid * c.grid, c.num_groups, c.embed_dim, c.decoder_embed_dim
        self.patch_embed = _PatchEmbed(c)
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, L, D))
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, T, D))
        self.blocks = nn.ModuleList(_Block(D, c.num_heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self.decoder_embed = nn.Linear(D, Dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, Dd))
        self.decoder_pos_embed_spatial = nn.Parameter(torch.zeros(1, L, Dd))
        self.decoder_pos_embed_temporal = nn.Parameter(torch.zeros(1, T, Dd))
        self.decoder_blocks = nn.ModuleList(_Block(Dd, c.decoder_num_heads, c.mlp_ratio)
                                            for _ in range(c.decoder_depth))
        self.decoder_norm = nn.LayerNorm(Dd, eps=1e-6)
        self.decoder_pred = nn.Linear(Dd, c.patch_dim)

    def patchify(self, imgs):
        c = self.cfg
        b, u, p = imgs.shape[0], c.t_patch_size, c.patch_size
        x = imgs.reshape(b, 1, c.num_groups, u, c.grid, p, c.grid, p)
        x = torch.einsum("nctuhpwq->nthwupqc", x)
        return x.reshape(b, c.num_tokens, u * p * p)

    def forward(self, imgs, mask_ratio=0.9, noise=None):
        c = self.cfg
        L, T = c.grid * c.grid, c.num_groups
        x = self.patch_embed(imgs)
        b, n, d = x.shape
        # masking: argsort of uniform noise, keep the first int(N * (1 - r))
        if noise is None:
            noise = torch.rand(b, n, device=imgs.device)
        keep = int(n * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, d))
        mask = torch.ones(b, n, device=imgs.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        # position: spatial repeated T times + temporal repeat-interleaved L times, gathered at the kept rows
        pos = self.pos_embed_spatial.repeat(1, T, 1) + torch.repeat_interleave(self.pos_embed_temporal, L, dim=1)
        pos = torch.gather(pos.expand(b, -1, -1), 1, ids_keep.unsqueeze(-1).repeat(1, 1, d))
        x = x + pos
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        # decoder
        x = self.decoder_embed(x)
        dd = x.shape[2]
        mask_tokens = self.mask_token.repeat(b, n - keep, 1)
        x = torch.cat([x, mask_tokens], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).repeat(1, 1, dd))
        x = x + (self.decoder_pos_embed_spatial.repeat(1, T, 1)
                 + torch.repeat_interleave(self.decoder_pos_embed_temporal, L, dim=1))
        for blk in self.decoder_blocks:
            x = blk(x)
        pred = self.decoder_pred(self.decoder_norm(x))
        # loss = masked MSE + MSE of the cubes summed over the spectral groups (all positions)
        target = self.patchify(imgs)
        if c.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target_n = (target - mean) / (var + 1.0e-6) ** 0.5
        else:
            target_n = target
        loss1 = ((pred - target_n) ** 2).mean(dim=-1)
        loss1 = (loss1 * mask).sum() / mask.sum()
        v = c.patch_dim
        t3 = (target if c.loss3_on_raw_targets else target_n).reshape(b, T, L, v).sum(dim=1)
        p3 = pred.reshape(b, T, L, v).sum(dim=1)
        loss3 = ((p3 - t3) ** 2).mean(dim=-1).mean()
        return loss1 + c.spectral_loss_weight * loss3, pred, mask


def stacked_fusion(head: nn.Module, outs: list[torch.Tensor]) -> torch.Tensor:
    """The published fusion of a `UPerHead`'s levels (finest first): every level resized to the finest,
    concatenated as channels, then `head.fuse` (1x1 conv, norm, activation)."""
    size = outs[0].shape[-2:]
    resized = [F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in outs[1:]]
    return head.fuse(torch.cat([outs[0], *resized], dim=1))
