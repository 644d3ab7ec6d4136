"""Sen1Floods11 (Bonafilia et al. 2020), hand-labelled Sentinel-2 flood chips.

Layout (the official one nests ``v1.1/data/flood_events/HandLabeled/{S2Hand,LabelHand}/``; any depth works)::

    <root>/**/<region>_<id>_S2Hand.tif        13 bands, int16, 512 x 512, EPSG:4326, nodata = 0
    <root>/**/<region>_<id>_LabelHand.tif     same folder, or the sibling folder ``LabelHand/`` of ``S2Hand/``
    <root>/splits/flood_handlabeled/flood_{train,valid,test}_data.csv   optional official splits: rows such as
                                              ``Bolivia_103757_S1Hand.tif,Bolivia_103757_LabelHand.tif``

S2 band order: **B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12** (B8A at index 8, unlike EuroSAT); the
real files also name their bands in the band descriptions, which win when present.

Label: the hand label as an (H, W) **int64** mask: 1 = water, 0 = not water, **-1 = no data / ignore** (kept as
is: use it as the ``ignore_index`` of the loss and metrics). Values outside {-1, 0, 1} are an `unknown_label`;
a label whose shape differs from the image's is `wrong_size`. ``meta['nodata']`` is the image's nodata (0).

Splits: the official csv files when present (split 'val' reads ``flood_valid_data.csv``), else a hash split of
the id (80/10/10). Sample id: ``<region>_<id>`` (e.g. ``Spain_7370579``).
"""

from __future__ import annotations

import os

import numpy as np

from spectralgpt.bands import ALL_BANDS
from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.data.sources.base import Entry, SourceDataset, read_list, resolve_in_root
from spectralgpt.io import raster

#: Sen1Floods11 S2Hand band order (B8A at index 8) -- the ESA product order.
SEN1FLOODS11_BANDS: tuple[str, ...] = ALL_BANDS
IGNORE_INDEX = -1
_S2 = "_S2Hand.tif"
_SPLIT_FILE = {"train": "flood_train_data.csv", "val": "flood_valid_data.csv", "test": "flood_test_data.csv"}


def _id_of(name: str) -> str:
    name = os.path.basename(name.strip())
    for suffix in ("_S1Hand.tif", "_S2Hand.tif", "_LabelHand.tif", "_S1OtsuLabelHand.tif", "_JRCWaterHand.tif"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


class Sen1Floods11(SourceDataset):
    kind = "sen1floods11"
    LAYOUT = "<root>/**/<region>_<id>_S2Hand.tif + <region>_<id>_LabelHand.tif (same or sibling LabelHand/ folder)"
    CLASS_NAMES = ("not water", "water")  # -1 = no data (ignored)
    OPTIONS = {"band_order": SEN1FLOODS11_BANDS}

    def _find(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith(_S2):
                    found.setdefault(f[: -len(_S2)], os.path.join(dirpath, f))
        return found

    def _index(self) -> list[Entry]:
        found = self._find()
        if self.split is not None:
            lst = os.path.join(self.root, "splits", "flood_handlabeled", _SPLIT_FILE[self.split])
            if os.path.exists(lst):
                out = []
                for line in read_list(lst):
                    first = line.split(",")[0].strip()
                    sid = _id_of(first)
                    _, err = resolve_in_root(self.root, first)
                    path = found.get(sid, os.path.join(self.root, f"{sid}{_S2}"))
                    out.append(Entry(sid, path, self.split, {}, err))
                return out
        out = []
        for sid, path in found.items():
            s = self._split_of(sid)
            if self._keep(s):
                out.append(Entry(sid, path, s))
        return out

    def _label_path(self, e: Entry) -> str | None:
        folder = os.path.dirname(e.path)
        name = f"{e.id}_LabelHand.tif"
        for p in (os.path.join(folder, name), os.path.join(os.path.dirname(folder), "LabelHand", name)):
            if os.path.exists(p):
                return p
        return None

    def _read(self, e: Entry) -> Sample:
        r = raster.read_multiband(e.path, self.bands, band_order=self.options["band_order"])
        lp = self._label_path(e)
        if lp is None:
            raise BadSample(Reason.MISSING_FILE, f"no {e.id}_LabelHand.tif beside {e.path} or in ../LabelHand", e.path)
        values = self._label_mask(lp, r.array.shape[-2:])
        label = values.astype(np.int64)
        bad = np.setdiff1d(np.unique(label), [-1, 0, 1])
        if bad.size:
            raise BadSample(Reason.UNKNOWN_LABEL, f"label values {bad[:10].tolist()} not in {{-1, 0, 1}}", lp)
        return self._sample(e, r, label=label, nodata=r.nodata, label_path=lp, ignore_index=IGNORE_INDEX)
