"""fMoW-Sentinel (Cong et al. 2022, SatMAE): Sentinel-2 time series of the 62 fMoW categories.

Layout::

    <root>/<split>.csv         (or any CSV passed as option ``csv=``) with the header
                               ``,category,location_id,image_id,timestamp,polygon,image_path``
    <root>/<image_path>        13-band GeoTIFF, image_path relative to <root>, e.g.
                               ``fmow-sentinel/train/airport/airport_0/airport_0_6.tif``

Band order of the files: **B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12** (ESA order, B8A at index 8;
inferred by the SpectralGPT/SatMAE authors from the per-band means, see the reference section 3.1); band
descriptions win when present.

Label: the index of ``category`` in `CATEGORIES`, the 62 fMoW categories in alphabetical order (airport=0 ...
zoo=61); a category outside the list is an `unknown_label`. Rows whose timestamp year is outside 2000-2020
(inclusive) are left out, as in the original loader; an unparseable timestamp is a `bad_label` sample.
Rows are ordered by id; an image_path escaping <root> is an `outside_root` sample.

Splits: ``<root>/<split>.csv`` ('val' also finds ``valid.csv``/``validation.csv``); split=None reads every one of
train/val/test csv that exists (or the ``csv`` option). Sample id: the image file's stem (e.g. ``airport_0_6``).
"""

from __future__ import annotations

import csv
import os
import re

from spectralgpt.bands import ALL_BANDS
from spectralgpt.data.sample import Sample, Reason
from spectralgpt.data.sources.base import EmptyDatasetError, Entry, SourceDataset, resolve_in_root
from spectralgpt.io import raster

FMOW_BANDS: tuple[str, ...] = ALL_BANDS
CATEGORIES: tuple[str, ...] = (
    "airport", "airport_hangar", "airport_terminal", "amusement_park", "aquaculture", "archaeological_site", "barn",
    "border_checkpoint", "burial_site", "car_dealership", "construction_site", "crop_field", "dam",
    "debris_or_rubble", "educational_institution", "electric_substation", "factory_or_powerplant", "fire_station",
    "flooded_road", "fountain", "gas_station", "golf_course", "ground_transportation_station", "helipad",
    "hospital", "impoverished_settlement", "interchange", "lake_or_pond", "lighthouse", "military_facility",
    "multi-unit_residential", "nuclear_powerplant", "office_building", "oil_or_gas_facility", "park",
    "parking_lot_or_garage", "place_of_worship", "police_station", "port", "prison", "race_track",
    "railway_bridge", "recreational_facility", "road_bridge", "runway", "shipyard", "shopping_mall",
    "single-unit_residential", "smokestack", "solar_farm", "space_facility", "stadium", "storage_tank",
    "surface_mine", "swimming_pool", "toll_booth", "tower", "tunnel_opening", "waste_disposal",
    "water_treatment_facility", "wind_farm", "zoo",
)
YEARS = (2000, 2020)
_YEAR = re.compile(r"^\s*(\d{4})-")
_CSV_NAMES = {"train": ("train.csv",), "val": ("val.csv", "valid.csv", "validation.csv"), "test": ("test.csv",)}


class FMoWSentinel(SourceDataset):
    kind = "fmow"
    LAYOUT = ("<root>/{train,val,test}.csv (header ,category,location_id,image_id,timestamp,polygon,image_path) "
              "naming GeoTIFFs under <root>")
    CLASS_NAMES = CATEGORIES
    OPTIONS = {"csv": None, "band_order": FMOW_BANDS}

    def _csvs(self) -> list[tuple[str, str | None]]:
        if self.options["csv"] is not None:
            return [(os.fspath(self.options["csv"]), self.split)]
        out = []
        for s in ("train", "val", "test") if self.split is None else (self.split,):
            for n in _CSV_NAMES[s]:
                p = os.path.join(self.root, n)
                if os.path.exists(p):
                    out.append((p, s))
                    break
        if not out:
            if self.split is None:
                raise EmptyDatasetError(f"fmow: no samples found under {self.root} (no train/val/test csv; pass "
                                        f"csv=); expected layout: {self.LAYOUT}")
            return []
        return out

    def _index(self) -> list[Entry]:
        out = []
        for path, split in self._csvs():
            with open(path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    rel = (row.get("image_path") or "").strip()
                    if not rel:
                        continue
                    full, err = resolve_in_root(self.root, rel)
                    sid = os.path.splitext(os.path.basename(rel))[0]
                    cat = (row.get("category") or "").strip()
                    m = _YEAR.match(row.get("timestamp") or "")
                    if m is None:
                        err = err or (Reason.BAD_LABEL, f"unparseable timestamp {row.get('timestamp')!r} in {path}")
                    elif not YEARS[0] <= int(m.group(1)) <= YEARS[1]:
                        continue
                    if err is None and cat not in CATEGORIES:
                        err = (Reason.UNKNOWN_LABEL, f"category {cat!r} is not one of the 62 fMoW categories")
                    info = {"category": cat, "timestamp": row.get("timestamp"), "location_id": row.get("location_id")}
                    out.append(Entry(sid, full, split, info, err))
        return out

    def _read(self, e: Entry) -> Sample:
        r = raster.read_multiband(e.path, self.bands, band_order=self.options["band_order"])
        return self._sample(e, r, label=CATEGORIES.index(e.info["category"]), nodata=r.nodata, **e.info)
