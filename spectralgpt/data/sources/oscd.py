"""OSCD, the Onera Satellite Change Detection dataset (Daudt et al. 2018): 24 cities, two Sentinel-2 L1C dates.

Layout::

    <root>/<city>/imgs_1/<prefix>_B01.tif ... _B12.tif, _B8A.tif   13 single-band files, date 1, native resolution
    <root>/<city>/imgs_2/<prefix>_B01.tif ...                       date 2 (the prefix differs between dates/cities)
    <root>/<city>/cm/<city>-cm.tif                                  uint8 change mask, 1 = no change, 2 = change
    <root>/<city>/cm/cm.png                                         the same mask as 0/255 (used if the tif is absent)
    <root>/train.txt, <root>/test.txt                               one line of comma-separated city names

Bands are found by their ``_Bxx.tif`` suffix. One sample per city:

* ``image``: date 1, every requested band resampled onto the grid of date 1's 10 m band B2 (option ``ref_band``;
  bilinear by default, option ``resampling``), keeping that grid's CRS (EPSG:4326 in the real files) and
  transform.
* ``image2``: date 2 read *directly onto date 1's grid*: each band file is windowed by the bounds of that grid and
  resampled in one read; pixels of the grid that date 2 does not cover are 0. If either date is not
  georeferenced, date 2 is read on its own B2 grid and then cropped or edge-padded (bottom/right) to date 1's
  shape -- what the original code did.
* ``label``: (H, W) uint8, 0 = no change, 1 = change. The mask's encoding is detected from its values: {1, 2}
  (the tif: 1 = no change, 2 = change, *not* 0/1 as the dataset README says) -> minus 1; {0, 255} (the png) or
  {0, 1} -> value > 0. Other values are an `unknown_label`. The real cm tif is not georeferenced: it must have
  date 1's 10 m shape (else `wrong_size`).

Splits: the city names in ``<split>.txt`` (only train and test exist); without list files, a hash split of the
city name. split=None: every city folder that has ``imgs_1``.
Sample id: the city name.
"""

from __future__ import annotations

import os
import re

import numpy as np

from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.data.sources.base import Entry, SourceDataset, resolve_in_root
from spectralgpt.data.sources.bigearthnet import band_files
from spectralgpt.io import raster


def read_city_list(path: str) -> list[str]:
    """City names from an OSCD list file (comma- and/or newline-separated)."""
    with open(path, encoding="utf-8") as f:
        return [c.strip() for c in re.split(r"[,\n\r]+", f.read()) if c.strip()]


def change_mask(values: np.ndarray, source: str = "") -> np.ndarray:
    """OSCD change mask in any of its encodings -> uint8 0 (no change) / 1 (change)."""
    u = set(np.unique(values).tolist())
    if u <= {1, 2}:
        return (values == 2).astype(np.uint8)
    if u <= {0, 1} or u <= {0, 255}:
        return (values > 0).astype(np.uint8)
    raise BadSample(
        Reason.UNKNOWN_LABEL, f"change mask values {sorted(u)[:10]} are none of {{1,2}}, {{0,1}}, {{0,255}}", source
    )


def _fit(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Crop and/or edge-pad the last two axes (bottom/right) to `shape`."""
    h, w = shape
    a = a[..., :h, :w]
    ph, pw = h - a.shape[-2], w - a.shape[-1]
    if ph or pw:
        a = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, ph), (0, pw)], mode="edge")
    return a


class OSCD(SourceDataset):
    kind = "oscd"
    CLASS_NAMES = ("no change", "change")
    OPTIONS = {"ref_band": "B2", "resampling": "bilinear", "image_dirs": ("imgs_1", "imgs_2")}

    def _lists(self) -> dict[str, str]:
        """{city: split} from the list files that exist."""
        out: dict[str, str] = {}
        for s in ("train", "val", "test"):
            p = os.path.join(self.root, f"{s}.txt")
            if os.path.exists(p):
                for c in read_city_list(p):
                    out.setdefault(c, s)
        return out

    def _index(self) -> list[Entry]:
        d1 = self.options["image_dirs"][0]
        if self.split is not None:
            p = os.path.join(self.root, f"{self.split}.txt")
            if os.path.exists(p):
                out = []
                for c in read_city_list(p):
                    path, err = resolve_in_root(self.root, c)
                    out.append(Entry(c, path, self.split, {}, err))
                return out
        lists = self._lists()
        out = []
        for d in sorted(os.scandir(self.root), key=lambda d: d.name):
            if d.is_dir() and os.path.isdir(os.path.join(d.path, d1)):
                s = lists.get(d.name) or self._split_of(d.name)
                if self._keep(s):
                    out.append(Entry(d.name, d.path, s))
        return out

    def _read(self, e: Entry) -> Sample:
        d1, d2 = (os.path.join(e.path, d) for d in self.options["image_dirs"])
        for d in (d1, d2):
            if not os.path.isdir(d):
                raise BadSample(Reason.MISSING_FILE, f"image folder {d} does not exist", d)
        opts = {"resampling": self.options["resampling"]}
        r1 = raster.read_band_files(band_files(d1), self.bands, ref_band=self.options["ref_band"], **opts)
        f2 = band_files(d2)
        georef2 = bool(f2) and raster.grid_of(next(iter(f2.values()))).crs is not None
        if r1.crs is not None and georef2:
            img2 = raster.read_band_files(f2, self.bands, grid=r1.grid, **opts).array
        else:
            img2 = raster.read_band_files(f2, self.bands, ref_band=self.options["ref_band"], **opts).array
            img2 = _fit(img2, r1.array.shape[-2:])
        label = self._label(e, r1.array.shape[-2:])
        return self._sample(e, r1, label=label, image2=img2, nodata=None, ref_band=r1.meta["ref_band"])

    def _label(self, e: Entry, shape) -> np.ndarray:
        cm = os.path.join(e.path, "cm")
        candidates = [os.path.join(cm, f"{e.id}-cm.tif"), os.path.join(cm, "cm.png"), os.path.join(cm, "cm.tif")]
        path = next((p for p in candidates if os.path.exists(p)), None)
        if path is None:
            raise BadSample(Reason.MISSING_FILE, f"no change mask in {cm} (looked for {e.id}-cm.tif, cm.png)", cm)
        try:
            values, _, _ = raster.read_mask(path)
        except BadSample as b:
            raise BadSample(Reason.BAD_LABEL, f"unreadable change mask: {b}", path) from b
        if values.shape != tuple(shape):
            raise BadSample(
                Reason.WRONG_SIZE, f"change mask {path} is {values.shape}, the 10 m grid is {tuple(shape)}", path
            )
        return change_mask(values, path)
