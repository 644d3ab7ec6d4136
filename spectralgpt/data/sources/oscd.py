"""OSCD, the Onera Satellite Change Detection dataset (Daudt et al. 2018): 24 cities, two Sentinel-2 L1C dates.

Layout as downloaded (the three archives unpacked side by side; <root> may also be the Images folder itself)::

    <root>/Onera Satellite Change Detection dataset - Images/
        train.txt, test.txt                        one line of comma-separated city names
        <city>/imgs_1/<prefix>_B01.tif ... _B12.tif, _B8A.tif   13 single-band files, date 1, native resolution
        <city>/imgs_2/<prefix>_B01.tif ...         date 2 (the prefix differs between dates/cities)
        <city>/imgs_1_rect/B01.tif ..., <city>/imgs_2_rect/...   the same bands co-registered by the authors
        <city>/dates.txt                           ``date_1: 20161130`` / ``date_2: 20170829``
    <root>/Onera Satellite Change Detection dataset - Train Labels/<city>/cm/<city>-cm.tif, cm/cm.png
    <root>/Onera Satellite Change Detection dataset - Test Labels/<city>/cm/...

or flat, one folder per city with its mask inside (``<root>/<city>/{imgs_1,imgs_2,cm}``, ``<root>/train.txt``).
The change mask is uint8, 1 = no change, 2 = change (``cm.png``: the same mask as 0/255, used if the tif is absent).

Option ``images``: ``"auto"`` (default) reads ``imgs_*_rect`` where a city has both (what the published code
trains on) and ``imgs_1`` / ``imgs_2`` otherwise; ``"rect"`` or ``"raw"`` forces one (a city without it is a
`missing_file` sample). ``meta['images']`` says which was read, ``meta['dates']`` holds dates.txt.

Bands are found by their ``Bxx.tif`` suffix. One sample per city:

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

Splits: the city names in ``<split>.txt`` (only train and test exist); without list files, the labels folder a
city's mask is in (download layout), else a hash split of the city name. split=None: every city folder that has
``imgs_1`` or ``imgs_1_rect``.
Sample id: the city name.
"""

from __future__ import annotations

import os
import re

import numpy as np

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.data.sources.base import Entry, SourceDataset, read_list, resolve_in_root
from spectralgpt.data.sources.bigearthnet import band_files
from spectralgpt.io import raster


#: the three folders the OSCD download unpacks into
IMAGES = "Onera Satellite Change Detection dataset - Images"
LABELS = {"train": "Onera Satellite Change Detection dataset - Train Labels",
          "test": "Onera Satellite Change Detection dataset - Test Labels"}
#: option ``images`` -> (date 1 folder, date 2 folder)
IMAGE_DIRS = {"raw": ("imgs_1", "imgs_2"), "rect": ("imgs_1_rect", "imgs_2_rect")}


def read_city_list(path: str) -> list[str]:
    """City names from an OSCD list file (comma- and/or newline-separated)."""
    with open(path, encoding="utf-8") as f:
        return [c.strip() for c in re.split(r"[,\n\r]+", f.read()) if c.strip()]


def read_dates(path: str) -> dict[str, str]:
    """dates.txt (``date_1: 20161130``) -> {"date_1": "20161130", ...}; {} when absent."""
    if not os.path.exists(path):
        return {}
    pairs = (ln.split(":", 1) for ln in read_list(path) if ":" in ln)
    return {k.strip(): v.strip() for k, v in pairs}


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
    LAYOUT = (f"<root>/{IMAGES}/<city>/imgs_1[_rect]/*B01.tif ..., imgs_2[_rect]/..., dates.txt + "
              f"<root>/{LABELS['train']}/<city>/cm/<city>-cm.tif (and - Test Labels); or flat <root>/<city>/"
              "{imgs_1,imgs_2,cm}")
    CLASS_NAMES = ("no change", "change")
    OPTIONS = {"ref_band": "B2", "resampling": "bilinear", "images": "auto"}

    def __init__(self, root, split=None, bands=PRETRAIN_BANDS, **options):
        if options.get("images", "auto") not in ("auto", *IMAGE_DIRS):
            raise ValueError(f"oscd: images={options['images']!r} is not supported; allowed: auto, rect, raw")
        super().__init__(root, split=split, bands=bands, **options)

    def _images(self) -> str:
        """The folder holding the city folders and list files."""
        inside = os.path.join(self.root, IMAGES)
        return inside if os.path.isdir(inside) else self.root

    def _label_roots(self) -> dict[str, str]:
        """{split: labels folder} of the download layout that exist (beside the Images folder)."""
        images = self._images()
        if os.path.basename(images) != IMAGES:
            return {}
        found = {s: os.path.join(os.path.dirname(images), d) for s, d in LABELS.items()}
        return {s: p for s, p in found.items() if os.path.isdir(p)}

    def _lists(self) -> dict[str, str]:
        """{city: split} from the list files that exist, else from the labels folder a city is in."""
        out: dict[str, str] = {}
        for s in ("train", "val", "test"):
            p = os.path.join(self._images(), f"{s}.txt")
            if os.path.exists(p):
                for c in read_city_list(p):
                    out.setdefault(c, s)
        if not out:
            for s, d in self._label_roots().items():
                for c in sorted(os.listdir(d)):
                    out.setdefault(c, s)
        return out

    def _dirs(self, city_path: str) -> tuple[str, str]:
        """The two image folders of a city under the ``images`` option."""
        choice = self.options["images"]
        if choice == "auto":
            rect = all(os.path.isdir(os.path.join(city_path, d)) for d in IMAGE_DIRS["rect"])
            choice = "rect" if rect else "raw"
        return tuple(os.path.join(city_path, d) for d in IMAGE_DIRS[choice])

    def _index(self) -> list[Entry]:
        images = self._images()
        if self.split is not None:
            p = os.path.join(images, f"{self.split}.txt")
            if os.path.exists(p):
                out = []
                for c in read_city_list(p):
                    path, err = resolve_in_root(images, c)
                    out.append(Entry(c, path, self.split, {}, err))
                return out
        lists = self._lists()
        out = []
        for d in sorted(os.scandir(images), key=lambda d: d.name):
            if d.is_dir() and any(os.path.isdir(os.path.join(d.path, x[0])) for x in IMAGE_DIRS.values()):
                s = lists.get(d.name) or self._split_of(d.name)
                if self._keep(s):
                    out.append(Entry(d.name, d.path, s))
        return out

    def _read(self, e: Entry) -> Sample:
        d1, d2 = self._dirs(e.path)
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
        images = "rect" if d1.endswith("_rect") else "raw"
        return self._sample(e, r1, label=label, image2=img2, nodata=None, ref_band=r1.meta["ref_band"],
                            images=images, dates=read_dates(os.path.join(e.path, "dates.txt")))

    def _label(self, e: Entry, shape) -> np.ndarray:
        folders = [os.path.join(e.path, "cm")] + [os.path.join(d, e.id, "cm") for d in self._label_roots().values()]
        cm = next((d for d in folders if os.path.isdir(d)), folders[0])
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
