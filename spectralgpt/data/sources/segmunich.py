"""SegMunich (the SpectralGPT paper's Munich land-cover segmentation set): 128 x 128 Sentinel-2 tiles.

Layout::

    <root>/dataset/train.txt, <root>/dataset/test.txt     tile names, one per line (with or without '.tif')
    <root>/<split>/img/<name>.tif                         multi-band image tile, 128 x 128
    <root>/<split>/label/<name>.tif                       single-band class mask, 128 x 128

Band order: from the files' band descriptions when they name Sentinel-2 bands; otherwise the documented default
`SEGMUNICH_BANDS` = **B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12** (10 bands). *Assumption*: the dataset's files
carry no band names and the original code does not state the order (its unused normalisation constants have 10
values); the 10 m + 20 m Sentinel-2 bands in ESA order (B1, B9, B10 at 60 m left out) is the natural reading.
Pass ``band_order=[...]`` if your copy differs.

Missing bands: the 12-band pretraining order asks for B1 and B9, which SegMunich lacks. By default this raises
`missing_bands` naming them. ``fill_missing="mean"`` fills each missing band with the per-pixel mean of the
file's bands (the original appended two such mean channels at the *end* of the stack; here they take the
missing bands' places in the requested order).

Label: int64 (H, W) mask with the original remapping of the raw codes 21->1, 22->2, 23->3, 31->4, 32->6, 33->7,
41->8, 13->9, 14->10 (every other value kept, e.g. 0 background and 255 ignore). `wrong_size` if its shape
differs from the image's.

Splits: ``dataset/<split>.txt`` (train, test; a 'val' list is used if present). Without list files, every
``<root>/*/img/*.tif`` with a hash split (80/10/10). split=None: every listed tile of every list.
Sample id: the tile name.
"""

from __future__ import annotations

import os

import numpy as np

from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.data.sources.base import Entry, SourceDataset, read_list, resolve_in_root
from spectralgpt.io import raster

SEGMUNICH_BANDS: tuple[str, ...] = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
#: raw label code -> class index (section 4.1 of the reference); other values are kept.
LABEL_REMAP: dict[int, int] = {21: 1, 22: 2, 23: 3, 31: 4, 32: 6, 33: 7, 41: 8, 13: 9, 14: 10}
#: class index after the remap -> name (0 background; 5, 11, 12 keep their codes)
CLASSES: tuple[str, ...] = ("background", "arable land", "permanent crops", "pastures", "forests", "surface water",
                            "shrub", "open spaces", "wetlands", "mine, dump, construction", "artificial vegetation",
                            "urban fabric", "industrial, commercial")


def remap_labels(values: np.ndarray) -> np.ndarray:
    out = values.astype(np.int64, copy=True)
    for src, dst in LABEL_REMAP.items():
        out[values == src] = dst
    return out


class SegMunich(SourceDataset):
    kind = "segmunich"
    LAYOUT = "<root>/<split>/img/<name>.tif + <root>/<split>/label/<name>.tif (+ <root>/dataset/<split>.txt)"
    CLASS_NAMES = CLASSES
    OPTIONS = {"band_order": SEGMUNICH_BANDS, "fill_missing": None}

    def _index(self) -> list[Entry]:
        if self.options["fill_missing"] not in (None, "mean"):
            raise ValueError(f"fill_missing={self.options['fill_missing']!r}; allowed: None, 'mean'")
        lists = {
            s: os.path.join(self.root, "dataset", f"{s}.txt")
            for s in ("train", "val", "test")
            if os.path.exists(os.path.join(self.root, "dataset", f"{s}.txt"))
        }
        out = []
        if lists:
            if self.split is not None and self.split not in lists:
                raise ValueError(f"segmunich: no {self.split} split in {self.root}/dataset (have {sorted(lists)})")
            for s, lst in lists.items():
                if not self._keep(s):
                    continue
                for line in read_list(lst):
                    name = line[:-4] if line.lower().endswith(".tif") else line
                    path, err = resolve_in_root(self.root, os.path.join(s, "img", f"{name}.tif"))
                    out.append(Entry(os.path.basename(name), path, s, {"split_dir": s}, err))
            return out
        for d in sorted(os.scandir(self.root), key=lambda d: d.name):
            img = os.path.join(d.path, "img")
            if d.is_dir() and os.path.isdir(img):
                for f in sorted(os.listdir(img)):
                    if f.lower().endswith(".tif"):
                        sid = f[:-4]
                        s = self._split_of(sid)
                        if self._keep(s):
                            out.append(Entry(sid, os.path.join(img, f), s, {"split_dir": d.name}))
        return out

    def _read(self, e: Entry) -> Sample:
        r = raster.read_multiband(
            e.path, self.bands, band_order=self.options["band_order"], fill_missing=self.options["fill_missing"]
        )
        lp = os.path.join(os.path.dirname(os.path.dirname(e.path)), "label", os.path.basename(e.path))
        if not os.path.exists(lp):
            raise BadSample(Reason.MISSING_FILE, f"label tile {lp} does not exist", lp)
        values = self._label_mask(lp, r.array.shape[-2:])
        return self._sample(e, r, label=remap_labels(values), nodata=r.nodata, label_path=lp,
                            filled_bands=r.meta["filled_bands"])
