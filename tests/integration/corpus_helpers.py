"""Tiny lazy Sample sequences for the corpus tests (stand-ins for spectralgpt.data.load_dataset)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from spectralgpt.data.sample import BadSample, Sample
from spectralgpt.io.digest import sha256_file


class TifFolder:
    """Multi-band GeoTIFFs with band descriptions, one sample per file (sorted by number)."""

    name = "tif-folder"

    def __init__(self, root, delay: float = 0.0, bad=()):
        self.files = sorted(Path(root).glob("*.tif"), key=lambda p: int(p.stem))
        self.delay, self.bad = delay, set(bad)

    def __len__(self):
        return len(self.files)

    def digest(self, i):
        """Content digest of sample i (what ingest records): here the file's bytes."""
        return sha256_file(self.files[i])

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay)
        f = self.files[i]
        if i in self.bad:
            raise BadSample("unreadable", "simulated corrupt file", str(f), f.stem)
        with rasterio.open(f) as d:
            return Sample(id=f.stem, image=d.read(), bands=tuple(d.descriptions), crs=d.crs, transform=d.transform,
                          source=str(f))


class ArraySource:
    """In-memory samples made on the fly from a seed: image (C, H, W) plus an optional label/second date."""

    name = "array-source"

    def __init__(self, n, bands=("B2", "B3", "B4"), hw=(40, 40), label=None, image2=False, bad=(),
                 dtype=np.uint16, k=5):
        self.n, self.bands, self.hw, self.label, self.image2 = n, tuple(bands), hw, label, image2
        self.bad, self.dtype, self.k = dict.fromkeys(bad, "unreadable") if not isinstance(bad, dict) else bad, dtype, k

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i in self.bad:
            kind = self.bad[i]
            if kind == "unreadable":
                raise BadSample("unreadable", "simulated", f"mem://{i}", f"a{i}")
            if kind == "missing_band":
                return Sample(id=f"a{i}", image=np.ones((2, *self.hw), self.dtype), bands=self.bands[:2],
                              source=f"mem://{i}")
            if kind == "nan":
                return Sample(id=f"a{i}", image=np.full((len(self.bands), *self.hw), np.nan, np.float32),
                              bands=self.bands, source=f"mem://{i}")
        rng = np.random.default_rng(i)
        img = rng.integers(1, 10000, (len(self.bands), *self.hw)).astype(self.dtype)
        lab = None
        if self.label == "class":
            lab = i % self.k
        elif self.label == "multilabel":
            lab = (rng.random(self.k) < 0.4).astype(np.float32)
        elif self.label == "mask":
            lab = (img[0] % 7).astype(np.uint8)  # derived from the image: alignment is checkable
        img2 = (img[::-1] // 2).copy() if self.image2 else None
        return Sample(id=f"a{i}", image=img, bands=self.bands, label=lab, image2=img2, crs=CRS.from_epsg(32632),
                      transform=Affine(10, 0, 500000 + 1000 * i, 0, -10, 5000000), source=f"mem://{i}",
                      split="train" if i % 4 else "val")


def tree_bytes(root) -> dict[str, bytes]:
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
