"""Reconstruction figures for MAE pretraining: input, masked input, reconstruction and error, for a true-colour
composite and a few single bands (red edge, NIR, SWIR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spectralgpt.bands import RGB_BANDS, band_indices
from spectralgpt.io.atomic import atomic_path
from spectralgpt.models.layers import patchify, unpatchify

EXTRA_BANDS = ("B5", "B8", "B11")


@torch.no_grad()
def reconstruct(model, imgs: torch.Tensor, mask_ratio: float = 0.9, seed: int = 0):
    """-> (images, masked images, reconstructions with visible cubes pasted back), all (B, C, H, W) float."""
    c = model.cfg
    imgs = imgs.to(next(model.parameters()).device)  # the figure's batch may come from a CPU loader
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(imgs.shape[0], c.num_tokens, generator=g).to(imgs.device)
    was_training = model.training
    model.eval()
    _, pred, mask = model(imgs, mask_ratio, noise)
    model.train(was_training)
    target = patchify(imgs, c.t_patch_size, c.patch_size)
    pred = pred.float()
    if c.norm_pix_loss:  # back from per-token normalised space
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        pred = pred * (var + 1e-6) ** 0.5 + mean
    m = mask.unsqueeze(-1)
    shape = (c.t_patch_size, c.patch_size, c.num_bands, c.img_size, c.img_size)
    masked = unpatchify(target * (1 - m), *shape)
    recon = unpatchify(target * (1 - m) + pred * m, *shape)
    return imgs.float(), masked, recon


def _rgb(x: np.ndarray, idx: list[int]) -> np.ndarray:
    rgb = x[idx].transpose(1, 2, 0)
    lo, hi = np.percentile(rgb, 2), np.percentile(rgb, 98)
    return np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)


def save_reconstruction_figure(model, imgs: torch.Tensor, path: str | Path, mask_ratio: float = 0.9,
                               max_images: int = 4, seed: int = 0) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = model.cfg.bands
    rgb_idx = band_indices(bands, RGB_BANDS) if set(RGB_BANDS) <= set(bands) else [0, 1, 2]
    extra = [b for b in EXTRA_BANDS if b in bands]
    x, masked, recon = (t[:max_images].cpu().numpy() for t in reconstruct(model, imgs[:max_images], mask_ratio, seed))
    cols = ["input RGB", "masked RGB", "reconstruction RGB", "|error| RGB"] + [f"{b} {k}" for b in extra
                                                                              for k in ("input", "recon.", "|error|")]
    fig, axes = plt.subplots(len(x), len(cols), figsize=(1.9 * len(cols), 1.9 * len(x)), squeeze=False)
    for r in range(len(x)):
        err = np.abs(recon[r] - x[r])
        panels = [_rgb(x[r], rgb_idx), _rgb(masked[r], rgb_idx), _rgb(recon[r], rgb_idx), err[rgb_idx].mean(0)]
        for b in extra:
            i = bands.index(b)
            panels += [x[r, i], recon[r, i], err[i]]
        for ax, img, title in zip(axes[r], panels, cols):
            ax.imshow(img, cmap=None if img.ndim == 3 else ("magma" if "error" in title else "gray"))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
    fig.suptitle(f"MAE reconstruction, mask ratio {mask_ratio:.2f}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path
