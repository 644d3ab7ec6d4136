"""Sentinel-2 band registry: names, centre wavelengths and native resolutions; selection by name.

Every dataset stores its bands in its own order (EuroSAT puts B8A last, Sen1Floods11 keeps it at index 8),
so bands are always selected by *name*, never by position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Band:
    name: str
    wavelength_nm: float  # centre wavelength (Sentinel-2A)
    resolution_m: int  # native ground sampling distance
    description: str


BANDS: dict[str, Band] = {
    b.name: b
    for b in (
        Band("B1", 442.7, 60, "coastal aerosol"),
        Band("B2", 492.4, 10, "blue"),
        Band("B3", 559.8, 10, "green"),
        Band("B4", 664.6, 10, "red"),
        Band("B5", 704.1, 20, "red edge 1"),
        Band("B6", 740.5, 20, "red edge 2"),
        Band("B7", 782.8, 20, "red edge 3"),
        Band("B8", 832.8, 10, "near infrared"),
        Band("B8A", 864.7, 20, "narrow near infrared"),
        Band("B9", 945.1, 60, "water vapour"),
        Band("B10", 1373.5, 60, "cirrus"),
        Band("B11", 1613.7, 20, "short-wave infrared 1"),
        Band("B12", 2202.4, 20, "short-wave infrared 2"),
    )
}

#: All 13 bands in the ESA product order (B8A after B8).
ALL_BANDS: tuple[str, ...] = tuple(BANDS)

#: The 12-band order SpectralGPT was pretrained on (B10 removed). Groups of three consecutive bands form
#: the model's spectral tokens: (B1,B2,B3), (B4,B5,B6), (B7,B8,B8A), (B9,B11,B12).
PRETRAIN_BANDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")

#: True-colour composite.
RGB_BANDS: tuple[str, ...] = ("B4", "B3", "B2")

_NAME = re.compile(r"^B0*(\d{1,2})(A?)$")


def canonical(name: str) -> str:
    """Normalise a band name: 'B01', 'b1', 'B08A', 'B8a' -> 'B1', 'B1', 'B8A', 'B8A'."""
    m = _NAME.match(str(name).strip().upper())
    if not m:
        raise ValueError(f"unknown Sentinel-2 band name {name!r}; expected one of {', '.join(ALL_BANDS)}")
    out = f"B{int(m.group(1))}{m.group(2)}"
    if out not in BANDS:
        raise ValueError(f"unknown Sentinel-2 band name {name!r}; expected one of {', '.join(ALL_BANDS)}")
    return out


def canonical_list(names) -> tuple[str, ...]:
    out = tuple(canonical(n) for n in names)
    dup = sorted({b for b in out if out.count(b) > 1})
    if dup:
        raise ValueError(f"band list names {', '.join(dup)} more than once: {list(names)}")
    return out


def band_indices(available, wanted) -> list[int]:
    """Positions of `wanted` bands inside `available`, by name. Raises naming every missing band."""
    have = canonical_list(available)
    want = canonical_list(wanted)
    missing = [b for b in want if b not in have]
    if missing:
        raise KeyError(f"missing band(s) {', '.join(missing)}: the source has {', '.join(have)}")
    return [have.index(b) for b in want]


def select_bands(image: np.ndarray, available, wanted) -> np.ndarray:
    """Reorder/select the band axis (axis 0) of a (C, H, W) array from `available` into `wanted` order."""
    if image.shape[0] != len(available):
        raise ValueError(f"image has {image.shape[0]} bands but {len(available)} band names were given")
    return image[band_indices(available, wanted)]
