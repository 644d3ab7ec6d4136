"""Position embeddings: separate spatial + spectral tables, and their resizing to a new image size."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def combine(spatial: torch.Tensor, spectral: torch.Tensor) -> torch.Tensor:
    """Token (t, s) gets spatial[s] + spectral[t]; (1, L, D) + (1, T, D) -> (1, T*L, D), spectral-group-major."""
    return (spectral[:, :, None, :] + spatial[:, None, :, :]).flatten(1, 2)


def resize_spatial(pe: torch.Tensor, grid: int) -> torch.Tensor:
    """Bicubic 2-D resize of a square spatial table (1, g*g, D) to (1, grid*grid, D)."""
    n, d = pe.shape[1], pe.shape[2]
    old = math.isqrt(n)
    if old * old != n:
        raise ValueError(f"spatial position embedding of {n} positions is not a square grid")
    if old == grid:
        return pe
    x = pe.reshape(1, old, old, d).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(grid, grid), mode="bicubic", align_corners=False)
    return x.permute(0, 2, 3, 1).reshape(1, grid * grid, d).to(pe.dtype)


def resize_joint(pe: torch.Tensor, groups: int, grid: int) -> torch.Tensor:
    """Resize a joint (1, T*L, D) table group by group (legacy classifier layout)."""
    n, d = pe.shape[1], pe.shape[2]
    if n % groups:
        raise ValueError(f"joint position embedding of {n} tokens does not split into {groups} spectral groups")
    per_group = pe.reshape(groups, 1, n // groups, d)
    return torch.cat([resize_spatial(g, grid) for g in per_group], dim=1)
