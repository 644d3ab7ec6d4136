"""HLS Burn Scars fixtures: small chips written with rasterio in the layout of the extracted Hugging Face download
(``hls_burn_scars/{training,validation}/subsetted_512x512_HLS.<S30|L30>.<tile>.<yyyyddd>.v1.4_merged.tif`` with its
``.mask.tif``), as the published files are: 6 bands of float64 reflectance (0-1) with -9999 nodata, int16 masks
with 1 = burned, 0 = not burned, -1 = missing data.

A chip's burned pixels have the spectral signature of a burn scar (dark NIR, bright SWIR 2: a negative normalised
burn ratio), so a tiny model can learn them in a few steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine

CRS = "EPSG:32610"  # HLS tile T10SEH lies in UTM zone 10 N
#: mean reflectance per band (Blue, Green, Red, NIR narrow, SWIR 1, SWIR 2) of unburned and burned ground
UNBURNED = np.array([0.04, 0.07, 0.07, 0.30, 0.22, 0.12])
BURNED = np.array([0.05, 0.06, 0.08, 0.12, 0.25, 0.24])


def chip(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(6, size, size) float64 reflectance and its (size, size) int16 mask: a burned disc, a missing-data corner."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    burned = (yy - cy) ** 2 + (xx - cx) ** 2 < (rng.uniform(0.2, 0.35) * size) ** 2
    image = np.where(burned[None], BURNED[:, None, None], UNBURNED[:, None, None])
    image = image * rng.uniform(0.85, 1.15) + rng.normal(0, 0.01, image.shape)
    mask = burned.astype(np.int16)
    image[:, :3, :3] = -9999  # missing data in a corner, masked -1
    mask[:3, :3] = -1
    return image, mask


def write_chip(folder: Path, stem: str, image: np.ndarray, mask: np.ndarray, mask_suffix: str = ".mask.tif",
               transform: Affine | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    transform = transform or Affine(30.0, 0.0, 600000.0, 0.0, -30.0, 4200000.0)
    profile = dict(driver="GTiff", height=image.shape[1], width=image.shape[2], crs=CRS, transform=transform)
    path = folder / f"{stem}_merged.tif"
    with rasterio.open(path, "w", count=image.shape[0], dtype=image.dtype, **profile) as dst:
        dst.write(image)
    with rasterio.open(folder / f"{stem}{mask_suffix}", "w", count=1, dtype=mask.dtype, **profile) as dst:
        dst.write(mask, 1)
    return path


def stem(i: int, sensor: str = "S30") -> str:
    return f"subsetted_512x512_HLS.{sensor}.T10SEH.{2018190 + i}.v1.4"


def make_hls_burn_scars(root: Path, n_train: int = 6, n_val: int = 2, size: int = 48) -> Path:
    """The extracted download under `root`/hls_burn_scars: `n_train` chips in training/, `n_val` in validation/
    (S30 and L30 granules alternate, as in the dataset); returns that folder."""
    top = root / "hls_burn_scars"
    for split, n, offset in (("training", n_train, 0), ("validation", n_val, 100)):
        for i in range(n):
            image, mask = chip(size, seed=offset + i)
            write_chip(top / split, stem(offset + i, "S30" if i % 2 == 0 else "L30"), image, mask)
    return top
