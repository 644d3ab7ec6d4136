"""Band registry for several sensors: names, centre wavelengths and native resolutions; selection by name.

Every dataset stores its bands in its own order (EuroSAT puts B8A last, Sen1Floods11 keeps it at index 8),
so bands are always selected by *name*, never by position.

Sensors (the `sensor` argument, case-insensitive, with aliases):

========  ==========================================  ===================================================
sensor    band names                                  canonical id
========  ==========================================  ===================================================
``s2``    B1..B12, B8A (Sentinel-2 MSI)               ``B8A`` (unqualified, as always; ``S2:B8A`` accepted)
``hls``   COASTAL_AEROSOL, BLUE, GREEN, RED,          ``HLS:NIR_NARROW``; "NIR Narrow", "nir-narrow",
          NIR_NARROW, SWIR_1, SWIR_2, CIRRUS          "SWIR 1", "swir1" are accepted spellings
``oli``   B1..B11 (Landsat 8/9 OLI + TIRS)            ``OLI:B5``
``rgb``   red, green, blue (a generic colour camera)  ``RGB:RED``
========  ==========================================  ===================================================

A name is either qualified (``"OLI:B5"``, ``"hls:NIR Narrow"``, ``"rgb:red"``) or plain with a `sensor`
argument (``canonical("B5", sensor="oli")``); a plain name without a sensor is a Sentinel-2 name, so every
Sentinel-2 call behaves as before. Canonical ids of other sensors always carry their ``SENSOR:`` prefix, so
``OLI:B5`` (near infrared) never clashes with Sentinel-2's ``B5`` (red edge 1).

Wavelengths: Sentinel-2A centre wavelengths (ESA); Landsat 8 OLI/TIRS centre wavelengths (USGS); HLS bands
carry the Sentinel-2A centre of the MSI band they are harmonised to (HLS adjusts L30's OLI bandpasses to MSI's,
so S30 and L30 chips share one set of names); RGB centres are nominal values for a colour camera (blue 480,
green 560, red 655 nm) and its resolution is unknown (None).

`equivalent_band` matches a band of any sensor onto a set of target bands (default: the 12 pretraining bands)
by wavelength: the nearest target centre within `tolerance_nm` (default 15 nm, under half the smallest spacing
of the pretraining bands, B8-B8A at 32 nm, so the match is never ambiguous). HLS NIR_NARROW (864.7 nm) is B8A,
OLI B2 (482 nm) is B2, OLI B8 (panchromatic, 589.5 nm) matches nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Band:
    name: str
    wavelength_nm: float  # centre wavelength (Sentinel-2A for Sentinel-2 and HLS)
    resolution_m: int | None  # native ground sampling distance (None: unknown, e.g. a generic RGB camera)
    description: str
    sensor: str = "s2"

    @property
    def id(self) -> str:
        """The canonical id: the plain name for Sentinel-2, ``SENSOR:NAME`` otherwise."""
        return self.name if self.sensor == "s2" else f"{self.sensor.upper()}:{self.name}"


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

#: True-colour composite (Sentinel-2 names).
RGB_BANDS: tuple[str, ...] = ("B4", "B3", "B2")

_HLS = tuple(
    Band(*a, sensor="hls")
    for a in (
        ("COASTAL_AEROSOL", 442.7, 30, "coastal aerosol (L30 B01, S30 B01)"),
        ("BLUE", 492.4, 30, "blue (L30 B02, S30 B02)"),
        ("GREEN", 559.8, 30, "green (L30 B03, S30 B03)"),
        ("RED", 664.6, 30, "red (L30 B04, S30 B04)"),
        ("NIR_NARROW", 864.7, 30, "narrow near infrared (L30 B05, S30 B8A)"),
        ("SWIR_1", 1613.7, 30, "short-wave infrared 1 (L30 B06, S30 B11)"),
        ("SWIR_2", 2202.4, 30, "short-wave infrared 2 (L30 B07, S30 B12)"),
        ("CIRRUS", 1373.5, 30, "cirrus (L30 B09, S30 B10)"),
    )
)
_OLI = tuple(
    Band(*a, sensor="oli")
    for a in (
        ("B1", 443.0, 30, "coastal aerosol"),
        ("B2", 482.0, 30, "blue"),
        ("B3", 561.4, 30, "green"),
        ("B4", 654.6, 30, "red"),
        ("B5", 864.6, 30, "near infrared"),
        ("B6", 1608.9, 30, "short-wave infrared 1"),
        ("B7", 2200.7, 30, "short-wave infrared 2"),
        ("B8", 589.5, 15, "panchromatic"),
        ("B9", 1373.4, 30, "cirrus"),
        ("B10", 10895.0, 100, "thermal infrared 1 (TIRS)"),
        ("B11", 12005.0, 100, "thermal infrared 2 (TIRS)"),
    )
)
_RGB = tuple(
    Band(*a, sensor="rgb")
    for a in (
        ("RED", 655.0, None, "red (nominal colour-camera centre)"),
        ("GREEN", 560.0, None, "green (nominal colour-camera centre)"),
        ("BLUE", 480.0, None, "blue (nominal colour-camera centre)"),
    )
)

#: Every sensor's bands by canonical name (product order), keyed by sensor.
SENSORS: dict[str, dict[str, Band]] = {
    "s2": BANDS,
    "hls": {b.name: b for b in _HLS},
    "oli": {b.name: b for b in _OLI},
    "rgb": {b.name: b for b in _RGB},
}

_SENSOR_TITLES = {"s2": "Sentinel-2", "hls": "HLS", "oli": "Landsat 8/9 OLI", "rgb": "RGB"}
_SENSOR_ALIASES = {
    "s2": "s2", "sentinel2": "s2", "sentinel-2": "s2", "sentinel_2": "s2", "msi": "s2",
    "hls": "hls", "hls_l30": "hls", "hls_s30": "hls", "l30": "hls", "s30": "hls",
    "oli": "oli", "landsat": "oli", "landsat8": "oli", "landsat9": "oli", "landsat-8": "oli", "landsat-9": "oli",
    "l8": "oli", "l9": "oli", "oli_tirs": "oli",
    "rgb": "rgb",
}

#: The 6 bands of the HLS Burn Scars chips, in file order (canonical ids).
HLS_BANDS: tuple[str, ...] = ("HLS:BLUE", "HLS:GREEN", "HLS:RED", "HLS:NIR_NARROW", "HLS:SWIR_1", "HLS:SWIR_2")

#: Landsat 8/9 OLI + TIRS bands B1..B11 (canonical ids).
OLI_BANDS: tuple[str, ...] = tuple(b.id for b in _OLI)

#: A colour camera's three bands in the usual file order (canonical ids).
RGB_CAMERA_BANDS: tuple[str, ...] = ("RGB:RED", "RGB:GREEN", "RGB:BLUE")

#: Default wavelength tolerance of `equivalent_band` (nm).
WAVELENGTH_TOLERANCE_NM = 15.0

_NAME = re.compile(r"^B0*(\d{1,2})(A?)$")


def sensor_key(sensor: str) -> str:
    """Normalise a sensor name ('Sentinel-2', 'landsat9', 'HLS', 'rgb') to a key of `SENSORS`."""
    key = _SENSOR_ALIASES.get(str(sensor).strip().lower())
    if key is None:
        raise ValueError(f"unknown sensor {sensor!r}; allowed: {', '.join(SENSORS)} (or an alias such as "
                         f"'sentinel2', 'landsat8', 'landsat9')")
    return key


def _s2(name: str, original) -> str:
    m = _NAME.match(name.upper())
    out = f"B{int(m.group(1))}{m.group(2)}" if m else None
    if out not in BANDS:
        raise ValueError(f"unknown Sentinel-2 band name {original!r}; expected one of {', '.join(ALL_BANDS)}")
    return out


def _other(key: str, name: str, original) -> str:
    table = SENSORS[key]
    up = re.sub(r"[\s\-]+", "_", name.strip().upper())
    if key == "oli":
        m = _NAME.match(up)
        up = f"B{int(m.group(1))}" if m and not m.group(2) else up
    elif key == "hls":
        up = re.sub(r"^(SWIR)(\d)$", r"\1_\2", up)  # SWIR1 -> SWIR_1
        up = {"NIR": "NIR_NARROW", "COASTAL": "COASTAL_AEROSOL"}.get(up, up)
    if up not in table:
        raise ValueError(f"unknown {_SENSOR_TITLES[key]} band name {original!r}; expected one of "
                         f"{', '.join(table)}")
    return table[up].id


def canonical(name: str, sensor: str | None = None) -> str:
    """Normalise a band name to its canonical id.

    Sentinel-2 (no sensor, 's2', or an 'S2:' prefix): 'B01', 'b1', 'B08A', 'B8a' -> 'B1', 'B1', 'B8A', 'B8A'.
    Other sensors, qualified or with `sensor`: 'oli:b05' or ('B5', 'landsat9') -> 'OLI:B5';
    'HLS:NIR Narrow' -> 'HLS:NIR_NARROW'; ('red', 'rgb') -> 'RGB:RED'.
    """
    text = str(name).strip()
    key = None if sensor is None else sensor_key(sensor)
    if ":" in text:
        prefix, _, text = text.partition(":")
        qualified = sensor_key(prefix)
        if key is not None and qualified != key:
            raise ValueError(f"band {name!r} names sensor {prefix!r}, but sensor {sensor!r} was given")
        key = qualified
    if key is None or key == "s2":
        return _s2(text, name)
    return _other(key, text, name)


def canonical_list(names, sensor: str | None = None) -> tuple[str, ...]:
    out = tuple(canonical(n, sensor) for n in names)
    dup = sorted({b for b in out if out.count(b) > 1})
    if dup:
        raise ValueError(f"band list names {', '.join(dup)} more than once: {list(names)}")
    return out


def band_info(name: str, sensor: str | None = None) -> Band:
    """The `Band` record of any sensor's band (name as accepted by `canonical`)."""
    cid = canonical(name, sensor)
    key, _, short = cid.rpartition(":")
    return SENSORS[key.lower() or "s2"][short]


def sensor_bands(sensor: str) -> tuple[str, ...]:
    """Canonical ids of every band of `sensor`, in product order."""
    return tuple(b.id for b in SENSORS[sensor_key(sensor)].values())


def equivalent_band(name: str, targets=PRETRAIN_BANDS, tolerance_nm: float = WAVELENGTH_TOLERANCE_NM,
                    sensor: str | None = None) -> str | None:
    """The band of `targets` that `name` stands for, or None.

    The same canonical id wins; otherwise the target with the nearest centre wavelength, if it is within
    `tolerance_nm` (a tie is refused as ambiguous). HLS NIR_NARROW -> B8A, OLI B4 -> B4, RGB RED -> B4.
    """
    cid = canonical(name, sensor)
    tids = canonical_list(targets)
    if cid in tids:
        return cid
    wl = band_info(cid).wavelength_nm
    dist = sorted((abs(band_info(t).wavelength_nm - wl), t) for t in tids)
    if not dist or dist[0][0] > tolerance_nm:
        return None
    if len(dist) > 1 and dist[1][0] == dist[0][0]:
        raise ValueError(f"band {cid} ({wl} nm) is equally near {dist[0][1]} and {dist[1][1]}")
    return dist[0][1]


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
