"""Building blocks: 3-D spectral-spatial tokenizer, pre-norm transformer block, patchify helpers.

Key names follow the published SpectralGPT checkpoints (`patch_embed.proj`, `attn.q|k|v|proj`, `mlp.fc1|fc2`,
`norm1`, `norm2`) so that released weights load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def patchify(imgs: torch.Tensor, t_patch: int, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, T*L, u*p*p).

    Tokens run spectral-group-major (index = t*L + row*(W/p) + col); the values inside a token run
    band-within-group first, then pixel row, then pixel column: the layout of the published decoder target
    and of the flattened Conv3d kernel.
    """
    b, c, h, w = imgs.shape
    t, gh, gw = c // t_patch, h // patch, w // patch
    x = imgs.reshape(b, t, t_patch, gh, patch, gw, patch)
    x = x.permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, t * gh * gw, t_patch * patch * patch)


def unpatchify(tokens: torch.Tensor, t_patch: int, patch: int, bands: int, height: int, width: int) -> torch.Tensor:
    """Inverse of `patchify`: (B, T*L, u*p*p) -> (B, C, H, W). A pure function (no module state)."""
    b = tokens.shape[0]
    t, gh, gw = bands // t_patch, height // patch, width // patch
    x = tokens.reshape(b, t, gh, gw, t_patch, patch, patch)
    x = x.permute(0, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, bands, height, width)


class PatchEmbed3D(nn.Module):
    """Conv3d tokenizer over (band, y, x) with one input channel, kernel = stride = (u, p, p).

    Returns tokens (B, T*L, D). Because kernel == stride, the convolution is exactly a linear map of each
    patchified cube; we compute it that way (one matmul), which also lets the MAE embed only the kept
    tokens. The weight keeps the Conv3d shape (D, 1, u, p, p) of the published checkpoints.
    """

    def __init__(self, img_size: int, patch_size: int, num_bands: int, t_patch_size: int, embed_dim: int):
        super().__init__()
        self.img_size, self.patch_size = img_size, patch_size
        self.num_bands, self.t_patch_size = num_bands, t_patch_size
        self.grid = img_size // patch_size
        self.num_spatial = self.grid * self.grid
        self.num_groups = num_bands // t_patch_size
        self.proj = nn.Conv3d(1, embed_dim, kernel_size=(t_patch_size, patch_size, patch_size),
                              stride=(t_patch_size, patch_size, patch_size))

    def check(self, imgs: torch.Tensor) -> None:
        if imgs.ndim != 4:
            raise ValueError(f"expected images of shape (B, bands, H, W), got {tuple(imgs.shape)}")
        _, c, h, w = imgs.shape
        if c != self.num_bands:
            raise ValueError(f"model expects {self.num_bands} bands, input has {c}")
        if (h, w) != (self.img_size, self.img_size):
            raise ValueError(f"model expects {self.img_size}x{self.img_size} images, input is {h}x{w}")

    def cubes(self, imgs: torch.Tensor) -> torch.Tensor:
        self.check(imgs)
        return patchify(imgs, self.t_patch_size, self.patch_size)

    def embed_cubes(self, cubes: torch.Tensor) -> torch.Tensor:
        w = self.proj.weight
        return F.linear(cubes, w.reshape(w.shape[0], -1), self.proj.bias)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.embed_cubes(self.cubes(imgs))


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v projections (published key names).

    The forward pass fuses q/k/v into one matmul and uses `scaled_dot_product_attention` (flash attention on
    CPUs and GPUs). q, k and v stay strided views of that matmul's (B, N, 3, heads, head_dim) output, so the
    backward pass writes their gradients straight into the layout the matmul's backward reads (one stack, no
    permute copy).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        weight = torch.cat([self.q.weight, self.k.weight, self.v.weight])
        bias = None if self.q.bias is None else torch.cat([self.q.bias, self.k.bias, self.v.bias])
        q, k, v = F.linear(x, weight, bias).view(b, n, 3, self.num_heads, d // self.num_heads).unbind(2)
        x = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Dropout(nn.Module):
    """Element-wise dropout, as `nn.Dropout`: in training each element is zeroed with probability p and the rest
    are scaled by 1 / (1 - p). On a CPU the keep mask is drawn from 16 random bits per element, four elements per
    64-bit draw of torch's generator (so `torch.manual_seed` still fixes it): `bernoulli_` spends one draw per
    element and took 16-27 % of the demo's segmentation step. p is rounded to a multiple of 2^-16 there
    (0.1 -> 0.100006). Other devices use `F.dropout` (their generators are already fast). No state: it replaces
    `nn.Dropout` without changing a state_dict."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or self.p == 1.0:
            return F.dropout(x, self.p, training=True)
        drop = round(self.p * 65536)  # keep an element when its 16 bits, read as int16, are >= drop - 32768
        words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-2**63, 2**63 - 1)
        bits = words.view(torch.int16)[: x.numel()].view(x.shape)
        keep = (bits >= drop - 32768).to(x.dtype)
        # the factor is a Python float, applied in the op's arithmetic (fp32 for bf16): not rounded to bf16 first
        return (x * keep).mul_(65536 / (65536 - drop))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability p."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)); LayerNorm eps 1e-6."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
