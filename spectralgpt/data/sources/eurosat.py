"""EuroSAT MS (Helber et al. 2019): 27,000 Sentinel-2 L1C patches in 10 land-cover classes.

Layout::

    <root>/<Class>/<Class>_<n>.tif     one GeoTIFF per image: 13 bands, uint16, 64 x 64, UTM CRS
    <root>/eurosat-<split>.txt         optional split lists (torchgeo convention): one file name per line,
                                       e.g. ``AnnualCrop_1.tif`` (a ``.jpg`` suffix is read as ``.tif``;
                                       a line with a '/' is a path relative to <root>)

File band order (no band descriptions in the files): **B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B8A** --
B8A is *last* (phelber/EuroSAT issue #7). Bands are selected by name, so in the 12-band pretraining order B8A
lands at index 8. If a file does carry valid band descriptions, those win.

Label: index of the class folder in the alphabetical class list `CLASSES` (AnnualCrop=0 ... SeaLake=9).
A file in a folder that is not one of the 10 classes is an `unknown_label` sample.

Splits: `eurosat-<split>.txt` when it exists; otherwise a deterministic hash split of the id (80/10/10
train/val/test, `base.hash_split`). split=None: every image under <root>.
Sample id: the file stem, e.g. ``AnnualCrop_1``.
"""

from __future__ import annotations

import os

from spectralgpt.data.sample import Reason, Sample
from spectralgpt.data.sources.base import Entry, SourceDataset, read_list, resolve_in_root
from spectralgpt.io import raster

#: EuroSAT's on-disk band order (B8A last).
EUROSAT_FILE_BANDS: tuple[str, ...] = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B8A",
)
CLASSES: tuple[str, ...] = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)
_EXTS = (".tif", ".tiff")


class EuroSAT(SourceDataset):
    kind = "eurosat"
    LAYOUT = "<root>/<Class>/<Class>_<n>.tif (13-band GeoTIFFs in the 10 class folders, e.g. Forest/Forest_1.tif)"
    CLASS_NAMES = CLASSES
    OPTIONS = {"band_order": EUROSAT_FILE_BANDS}

    def _entry(self, path: str, split: str | None, error=None) -> Entry:
        cls = os.path.basename(os.path.dirname(path))
        stem = os.path.splitext(os.path.basename(path))[0]
        e = Entry(stem, path, split, {"class": cls}, error)
        if e.error is None and cls not in CLASSES:
            e.error = (Reason.UNKNOWN_LABEL, f"class folder {cls!r} is not a EuroSAT class ({', '.join(CLASSES)})")
        return e

    def _index(self) -> list[Entry]:
        if self.split is not None:
            lst = os.path.join(self.root, f"eurosat-{self.split}.txt")
            if os.path.exists(lst):
                out = []
                for line in read_list(lst):
                    name = line
                    for ext in (".jpg", ".jpeg", ".png"):
                        if name.lower().endswith(ext):
                            name = name[: -len(ext)] + ".tif"
                    rel = name if "/" in name else os.path.join(name.rsplit("_", 1)[0], name)
                    path, err = resolve_in_root(self.root, rel)
                    out.append(self._entry(path, self.split, err))
                return out
        out = []
        for d in sorted(os.scandir(self.root), key=lambda d: d.name):
            if not d.is_dir():
                continue
            for f in sorted(os.scandir(d.path), key=lambda f: f.name):
                if f.name.lower().endswith(_EXTS) and f.is_file():
                    e = self._entry(f.path, None)
                    e.split = self._split_of(e.id)
                    if self._keep(e.split):
                        out.append(e)
        return out

    def _read(self, e: Entry) -> Sample:
        r = raster.read_multiband(e.path, self.bands, band_order=self.options["band_order"])
        return self._sample(e, r, label=CLASSES.index(e.info["class"]), nodata=r.nodata,
                            file_bands=r.meta["file_bands"], **{"class": e.info["class"]})
