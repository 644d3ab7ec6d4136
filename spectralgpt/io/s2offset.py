"""Sentinel-2 processing baseline 04.00 radiometric offsets, harmonised to the pre-2022 scale.

Since 25 January 2022 (baseline 04.00) ESA adds 1000 to every L1C and L2A digital number so that dark pixels keep
their noise below zero: reflectance = (DN + RADIO_ADD_OFFSET) / 10000 (L1C) or (DN + BOA_ADD_OFFSET) / 10000
(L2A), with both offsets -1000 and declared per band in the product's ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``.
The pretraining corpora (fMoW-Sentinel, BigEarthNet, EuroSAT, OSCD) predate it, so a model fed new products
unharmonised sees every band 1000 DN too bright. Harmonising means ``DN - 1000``, clipped at 0, in the same
dtype: the pixels then read as the same scene processed before 2022 would.

An offset here is what was *added* to the DNs (1000 for baseline 04.00): a positive number that is subtracted.
Where it comes from (`resolve`):

* ``"auto"``: the ``MTD_MSIL*.xml`` of the SAFE product the file lies in (searched in its folder and upwards,
  never above ``stop``); none found -> nothing applied (a bare GeoTIFF carries no baseline);
* an integer: that offset for every band (bare GeoTIFFs exported from 04.00 products); 0 or ``"none"``: nothing.

Metadata files are small XML documents; one that is large or declares a DOCTYPE/entities is refused rather than
parsed (no entity expansion from a downloaded file).
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET

import numpy as np

from spectralgpt.bands import ALL_BANDS

log = logging.getLogger(__name__)

METADATA_NAMES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
#: band_id in the metadata -> band name (ESA order: B8A is band_id 8)
BAND_IDS = dict(enumerate(ALL_BANDS))
MAX_METADATA_BYTES = 16 << 20
_OFFSET_TAGS = ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_product_offsets(path: str | os.PathLike) -> dict:
    """{"baseline": "04.00" | None, "offsets": {band: DN offset added}, "metadata": path} from an MTD file.
    Products before baseline 04.00 declare no offsets: {} (nothing to subtract)."""
    path = os.fspath(path)
    if os.path.getsize(path) > MAX_METADATA_BYTES:
        raise ValueError(f"{path}: {os.path.getsize(path)} bytes is not a Sentinel-2 product metadata file")
    with open(path, "rb") as f:
        data = f.read()
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError(f"{path}: refusing product metadata that declares a DOCTYPE or entities")
    baseline, offsets = None, {}
    for el in ET.fromstring(data).iter():
        name = _local(el.tag)
        if name == "PROCESSING_BASELINE" and el.text:
            baseline = el.text.strip()
        elif name in _OFFSET_TAGS:
            band = BAND_IDS.get(int(el.get("band_id", "-1")))
            if band is not None and el.text:
                offsets[band] = -int(float(el.text.strip()))
    return {"baseline": baseline, "offsets": offsets, "metadata": path}


def find_product_metadata(path: str | os.PathLike, stop: str | os.PathLike | None = None,
                          max_levels: int = 6) -> str | None:
    """The MTD_MSIL1C/2A.xml of the SAFE product `path` (a band file or folder) lies in, or None: looked for in
    the folder and its parents, at most `max_levels` up, never above `stop`, and not past a ``*.SAFE`` folder."""
    path = os.path.abspath(os.fspath(path))
    if path.startswith("/vsi"):
        return None
    d = path if os.path.isdir(path) else os.path.dirname(path)
    stop = os.path.abspath(os.fspath(stop)) if stop is not None else None
    for _ in range(max_levels):
        for name in METADATA_NAMES:
            if os.path.isfile(os.path.join(d, name)):
                return os.path.join(d, name)
        if d.upper().endswith(".SAFE") or d == stop or os.path.dirname(d) == d:
            return None
        d = os.path.dirname(d)
    return None


def check_option(value) -> str | int:
    """"auto", or an integer offset >= 0 ("none" and None mean 0); anything else raises naming the value."""
    if value is None or value == "none":
        return 0
    if value == "auto":
        return "auto"
    try:
        v = int(value)
    except (TypeError, ValueError):
        v = -1
    if v < 0 or (isinstance(value, float) and value != v) or isinstance(value, bool):
        raise ValueError(f"offset={value!r}: allowed are 'auto', 'none' or an integer DN offset >= 0 (1000 for "
                         "Sentinel-2 baseline 04.00)")
    return v


def resolve(path, bands, option="auto", stop=None) -> dict:
    """What to subtract from the pixels of `path`: {"offsets": {band: n} (only n > 0), "source": "metadata" |
    "option" | "none", "baseline": ..., "metadata": path | None}."""
    option = check_option(option)
    if option != "auto":
        offsets = {b: option for b in bands} if option else {}
        return {"offsets": offsets, "source": "option" if option else "none", "baseline": None, "metadata": None}
    mtd = find_product_metadata(path, stop)
    if mtd is None:
        return {"offsets": {}, "source": "none", "baseline": None, "metadata": None}
    found = read_product_offsets(mtd)
    offsets = {b: n for b, n in found["offsets"].items() if b in set(bands) and n > 0}
    return {"offsets": offsets, "source": "metadata" if offsets else "none", "baseline": found["baseline"],
            "metadata": mtd}


def harmonize(pixels: np.ndarray, bands, offsets: dict) -> np.ndarray:
    """(C, ...) pixels with band `bands[k]`'s offset subtracted and clipped at 0, in the input dtype."""
    if not offsets:
        return pixels
    sub = np.array([offsets.get(b, 0) for b in bands], np.int64).reshape((-1,) + (1,) * (pixels.ndim - 1))
    if pixels.dtype.kind == "f":
        return np.maximum(pixels - sub.astype(pixels.dtype), 0).astype(pixels.dtype)
    return np.maximum(pixels.astype(np.int64) - sub, 0).astype(pixels.dtype)


def summary(applied: dict) -> int | dict | None:
    """A compact record: the one offset when every band got the same, else {band: offset}; None when none."""
    values = set(applied["offsets"].values())
    if not values:
        return None
    return values.pop() if len(values) == 1 else dict(applied["offsets"])
