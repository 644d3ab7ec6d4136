"""BigEarthNet-S2 v1.0 (Sumbul et al. 2019): 590,326 Sentinel-2 L2A patches with CORINE multi-labels.

Layout::

    <root>/<patch>/<patch>_B01.tif ... <patch>_B12.tif, <patch>_B8A.tif   12 single-band files (no B10), uint16
    <root>/<patch>/<patch>_labels_metadata.json                           {"labels": [CORINE level-3 names], ...}
    <root>/{train,val,test}.csv                                           optional: one patch name per line,
                                                                          no header (the official splits)

Each band lives at its native resolution: 10 m bands (B2, B3, B4, B8) are 120 x 120, 20 m bands (B5, B6, B7,
B8A, B11, B12) 60 x 60 and 60 m bands (B1, B9) 20 x 20. Every band is resampled onto the grid of B2
(120 x 120, bilinear by default; see `spectralgpt.io.raster`), keeping that grid's CRS and transform. Band files
are found by their ``_Bxx.tif`` suffix. Requesting B10 raises `missing_bands` (BigEarthNet has none).

Labels: the json's CORINE level-3 names (43-class nomenclature, `LABELS_43`) become a float32 multi-hot over the
19-class nomenclature of Sumbul et al. 2021 (`LABELS_19`) through `TO_19`:

====================================================  ==========================================================
19-class label (index)                                CORINE level-3 names merged into it
====================================================  ==========================================================
0  Urban fabric                                       Continuous urban fabric; Discontinuous urban fabric
1  Industrial or commercial units                     (itself)
2  Arable land                                        Non-irrigated arable land; Permanently irrigated land;
                                                      Rice fields
3  Permanent crops                                    Vineyards; Fruit trees and berry plantations; Olive groves;
                                                      Annual crops associated with permanent crops
4  Pastures                                           (itself)
5  Complex cultivation patterns                       (itself)
6  Land principally occupied by agriculture, ...      (itself)
7  Agro-forestry areas                                (itself)
8  Broad-leaved forest                                (itself)
9  Coniferous forest                                  (itself)
10 Mixed forest                                       (itself)
11 Natural grassland and sparsely vegetated areas     Natural grassland; Sparsely vegetated areas
12 Moors, heathland and sclerophyllous vegetation     Moors and heathland; Sclerophyllous vegetation
13 Transitional woodland, shrub                       Transitional woodland/shrub (the 43-class spelling)
14 Beaches, dunes, sands                              (itself)
15 Inland wetlands                                    Inland marshes; Peatbogs
16 Coastal wetlands                                   Salt marshes; Salines
17 Inland waters                                      Water courses; Water bodies
18 Marine waters                                      Coastal lagoons; Estuaries; Sea and ocean
====================================================  ==========================================================

22 level-3 names are merged into groups; the 11 names in `DROPPED_43` (road and rail networks, port areas,
airports, mineral extraction, dump and construction sites, green urban areas, sport and leisure facilities,
bare rock, burnt areas, intertidal flats) have no 19-class counterpart and are dropped. A name that is neither
a 43-class nor a 19-class name is an `unknown_label`; an unreadable/malformed json is a `bad_label`.
Option ``nomenclature=43`` returns the 43-class multi-hot instead.

Splits: ``<root>/<split>.csv`` when present, else a deterministic hash split of the patch name (80/10/10).
Sample id: the patch name.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.data.sources.base import Entry, SourceDataset, read_list, resolve_in_root
from spectralgpt.io import raster

LABELS_43: tuple[str, ...] = (
    "Continuous urban fabric", "Discontinuous urban fabric", "Industrial or commercial units",
    "Road and rail networks and associated land", "Port areas", "Airports", "Mineral extraction sites",
    "Dump sites", "Construction sites", "Green urban areas", "Sport and leisure facilities",
    "Non-irrigated arable land", "Permanently irrigated land", "Rice fields", "Vineyards",
    "Fruit trees and berry plantations", "Olive groves", "Pastures", "Annual crops associated with permanent crops",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas", "Broad-leaved forest", "Coniferous forest", "Mixed forest", "Natural grassland",
    "Moors and heathland", "Sclerophyllous vegetation", "Transitional woodland/shrub", "Beaches, dunes, sands",
    "Bare rock", "Sparsely vegetated areas", "Burnt areas", "Inland marshes", "Peatbogs", "Salt marshes",
    "Salines", "Intertidal flats", "Water courses", "Water bodies", "Coastal lagoons", "Estuaries",
    "Sea and ocean",
)

LABELS_19: tuple[str, ...] = (
    "Urban fabric", "Industrial or commercial units", "Arable land", "Permanent crops", "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas", "Broad-leaved forest", "Coniferous forest", "Mixed forest",
    "Natural grassland and sparsely vegetated areas", "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub", "Beaches, dunes, sands", "Inland wetlands", "Coastal wetlands",
    "Inland waters", "Marine waters",
)

#: Level-3 names merged into a 19-class group (22 names).
GROUPS_43_TO_19: dict[str, str] = {
    "Continuous urban fabric": "Urban fabric",
    "Discontinuous urban fabric": "Urban fabric",
    "Non-irrigated arable land": "Arable land",
    "Permanently irrigated land": "Arable land",
    "Rice fields": "Arable land",
    "Vineyards": "Permanent crops",
    "Fruit trees and berry plantations": "Permanent crops",
    "Olive groves": "Permanent crops",
    "Annual crops associated with permanent crops": "Permanent crops",
    "Natural grassland": "Natural grassland and sparsely vegetated areas",
    "Sparsely vegetated areas": "Natural grassland and sparsely vegetated areas",
    "Moors and heathland": "Moors, heathland and sclerophyllous vegetation",
    "Sclerophyllous vegetation": "Moors, heathland and sclerophyllous vegetation",
    "Inland marshes": "Inland wetlands",
    "Peatbogs": "Inland wetlands",
    "Salt marshes": "Coastal wetlands",
    "Salines": "Coastal wetlands",
    "Water courses": "Inland waters",
    "Water bodies": "Inland waters",
    "Coastal lagoons": "Marine waters",
    "Estuaries": "Marine waters",
    "Sea and ocean": "Marine waters",
}
#: The one name whose 43- and 19-class spellings differ (same class).
RENAMED_43_TO_19: dict[str, str] = {"Transitional woodland/shrub": "Transitional woodland, shrub"}
#: Level-3 names without a 19-class counterpart.
DROPPED_43: tuple[str, ...] = (
    "Road and rail networks and associated land", "Port areas", "Airports", "Mineral extraction sites",
    "Dump sites", "Construction sites", "Green urban areas", "Sport and leisure facilities", "Bare rock",
    "Burnt areas", "Intertidal flats",
)

#: Any accepted label name (43-class or 19-class spelling) -> 19-class name, or None (dropped).
TO_19: dict[str, str | None] = {
    **{n: n for n in LABELS_19},
    **GROUPS_43_TO_19,
    **RENAMED_43_TO_19,
    **{n: None for n in DROPPED_43},
}

_BAND_FILE = re.compile(r"(?:^|_)(B\d{1,2}A?)\.tiff?$", re.IGNORECASE)


def labels_to_multihot(names, nomenclature: int = 19, source: str = "") -> np.ndarray:
    """CORINE names -> float32 multi-hot (19 or 43 classes). Unknown names raise `BadSample('unknown_label')`."""
    if nomenclature == 43:
        unknown = [n for n in names if n not in LABELS_43]
        if unknown:
            raise BadSample(Reason.UNKNOWN_LABEL, f"not BigEarthNet-43 class name(s): {unknown}", source)
        out = np.zeros(len(LABELS_43), np.float32)
        out[[LABELS_43.index(n) for n in names]] = 1.0
        return out
    unknown = [n for n in names if n not in TO_19]
    if unknown:
        raise BadSample(Reason.UNKNOWN_LABEL, f"not BigEarthNet class name(s): {unknown}", source)
    out = np.zeros(len(LABELS_19), np.float32)
    for n in names:
        if TO_19[n] is not None:
            out[LABELS_19.index(TO_19[n])] = 1.0
    return out


def band_files(folder: str) -> dict[str, str]:
    """{band: path} of the ``*_Bxx.tif`` files in a folder."""
    from spectralgpt.bands import canonical

    out: dict[str, str] = {}
    for f in sorted(os.listdir(folder)):
        m = _BAND_FILE.search(f)
        if m:
            try:
                b = canonical(m.group(1))
            except ValueError:
                continue
            if b in out:
                raise BadSample(
                    Reason.UNREADABLE, f"two files for band {b} in {folder}: {os.path.basename(out[b])}, {f}", folder
                )
            out[b] = os.path.join(folder, f)
    return out


def _is_patch(path: str, name: str) -> bool:
    """A folder is a patch when it holds the patch's labels json or its B02 file (two stats, no listing), so
    that a root of unrelated folders lists no samples (and fails naming the layout) instead of bad ones."""
    return any(os.path.exists(os.path.join(path, f"{name}{f}")) for f in ("_labels_metadata.json", "_B02.tif"))


class BigEarthNet(SourceDataset):
    kind = "bigearthnet"
    LAYOUT = "<root>/<patch>/<patch>_B01.tif ... _B8A.tif + <patch>_labels_metadata.json"

    @property
    def class_names(self) -> tuple[str, ...]:
        return LABELS_43 if self.options.get("nomenclature") == 43 else LABELS_19
    OPTIONS = {"nomenclature": 19, "resampling": "bilinear", "ref_band": "B2"}

    def _index(self) -> list[Entry]:
        if self.options["nomenclature"] not in (19, 43):
            raise ValueError(f"nomenclature={self.options['nomenclature']!r}; allowed: 19, 43")
        if self.split is not None:
            lst = os.path.join(self.root, f"{self.split}.csv")
            if os.path.exists(lst):
                out = []
                for line in read_list(lst):
                    name = line.split(",")[0].strip()
                    path, err = resolve_in_root(self.root, name)
                    out.append(Entry(os.path.basename(path) or name, path, self.split, {}, err))
                return out
        out = []
        for d in sorted(os.scandir(self.root), key=lambda d: d.name):
            if d.is_dir() and _is_patch(d.path, d.name):
                s = self._split_of(d.name)
                if self._keep(s):
                    out.append(Entry(d.name, d.path, s))
        return out

    def _read(self, e: Entry) -> Sample:
        if not os.path.isdir(e.path):
            raise BadSample(Reason.MISSING_FILE, f"patch folder {e.path} does not exist", e.path)
        label = self._label(e)
        r = raster.read_band_files(
            band_files(e.path),
            self.bands,
            ref_band=self.options["ref_band"],
            resampling=self.options["resampling"],
        )
        return self._sample(e, r, label=label, nodata=None, files=r.meta["files"])

    def _label(self, e: Entry) -> np.ndarray:
        path = os.path.join(e.path, f"{e.id}_labels_metadata.json")
        if not os.path.exists(path):
            raise BadSample(Reason.MISSING_FILE, f"label file {path} does not exist", path)
        try:
            with open(path, encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as ex:
            raise BadSample(Reason.BAD_LABEL, f"cannot parse label json {path}: {ex}", path) from ex
        names = meta.get("labels") if isinstance(meta, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadSample(Reason.BAD_LABEL, f"{path} has no list of label names under 'labels'", path)
        return labels_to_multihot(names, self.options["nomenclature"], path)
