"""Shared helpers of the inference tests: scenes written with rasterio, tiny saved models, per-tile references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import Affine

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.inference import Predictor
from spectralgpt.models import create_model, save_model

CRS = "EPSG:32631"
TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)
MINMAX = {"name": "minmax", "eps": 1e-10}


def save_tiny(path: Path, name: str, task: str, classes: list[str], seed: int = 0, **extra) -> Path:
    torch.manual_seed(seed)
    model = create_model(name, num_classes=len(classes))
    return save_model(model, path, normalization=MINMAX, extra={"task": task, "class_names": classes, **extra})


def scene_array(h: int, w: int, seed: int = 0, bands=PRETRAIN_BANDS) -> np.ndarray:
    """Smooth-ish uint16 reflectances (so tiles differ) without zeros (0 = nodata)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([1000 + 800 * np.sin(xx / (7 + i) + yy / (11 + 2 * i)) for i in range(len(bands))])
    return (base + rng.integers(0, 400, base.shape) + 500).astype(np.uint16)


def write_scene(path: Path, arr: np.ndarray, bands=PRETRAIN_BANDS, crs=CRS, transform=TRANSFORM, nodata=0,
                descriptions=True) -> Path:
    with rasterio.open(path, "w", driver="GTiff", count=arr.shape[0], height=arr.shape[1], width=arr.shape[2],
                       dtype=arr.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(arr)
        if descriptions:
            for i, b in enumerate(bands, start=1):
                dst.set_band_description(i, b)
    return path


def write_band_folder(folder: Path, arr: np.ndarray, prefix: str = "T31UDQ_20200101T000000",
                      bands=PRETRAIN_BANDS, transform=TRANSFORM, crs=CRS) -> Path:
    """One single-band GeoTIFF per band, all on the 10 m grid, named <prefix>_B01.tif ... _B8A.tif."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, b in enumerate(bands):
        name = f"{prefix}_B{b[1:].zfill(2) if not b.endswith('A') else b[1:]}.tif"
        with rasterio.open(folder / name, "w", driver="GTiff", count=1, height=arr.shape[1], width=arr.shape[2],
                           dtype=arr.dtype, crs=crs, transform=transform) as dst:
            dst.write(arr[i], 1)
    return folder


def read(path: Path):
    with rasterio.open(path) as src:
        return src.read(), src.profile, src.descriptions


def tile_probs(predictor: Predictor, arr: np.ndarray, r: int, c: int, arr2: np.ndarray | None = None) -> np.ndarray:
    """The model applied to the one tile at (r, c) (reflect-padded to the tile size), probabilities (K, T, T)."""
    t = predictor.size

    def cut(a):
        x = a[:, r:r + t, c:c + t]
        return np.pad(x, ((0, 0), (0, t - x.shape[1]), (0, t - x.shape[2])), mode="reflect")

    return predictor.predict(cut(arr), None if arr2 is None else cut(arr2))[0]
