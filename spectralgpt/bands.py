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
carry the OLI centre wavelengths, the reference of HLS's bandpass adjustment (S30's MSI bands are adjusted to
OLI's, so S30 and L30 granules share one set of names); RGB centres are nominal values for a colour camera (blue
480, green 560, red 655 nm) and its resolution is unknown (None).

`equivalent_band` matches a band of any sensor onto a set of target bands (default: the 12 pretraining bands)
by wavelength: the nearest target centre within `tolerance_nm` (default 15 nm, under half the smallest spacing
of the pretraining bands, B8-B8A at 32 nm, so the match is never ambiguous). HLS NIR_NARROW (864.6 nm) is B8A,
OLI B2 (482 nm) is B2, OLI B8 (panchromatic, 589.5 nm) matches nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Band:
    name: str
    wavelength_nm: float  # centre wavelength (Sentinel-2A for Sentinel-2; Landsat 8 OLI for OLI and HLS)
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
        ("COASTAL_AEROSOL", 443.0, 30, "coastal aerosol (L30 B01, S30 B01)"),
        ("BLUE", 482.0, 30, "blue (L30 B02, S30 B02)"),
        ("GREEN", 561.4, 30, "green (L30 B03, S30 B03)"),
        ("RED", 654.6, 30, "red (L30 B04, S30 B04)"),
        ("NIR_NARROW", 864.6, 30, "narrow near infrared (L30 B05, S30 B8A)"),
        ("SWIR_1", 1608.9, 30, "short-wave infrared 1 (L30 B06, S30 B11)"),
        ("SWIR_2", 2200.7, 30, "short-wave infrared 2 (L30 B07, S30 B12)"),
        ("CIRRUS", 1373.4, 30, "cirrus (L30 B09, S30 B10)"),
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


class MissingBandsError(KeyError, ValueError):
    """Bands that are needed are absent from an input: a KeyError (what `band_indices` has always raised) and a
    ValueError (a bad input, refused with this message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


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
        raise MissingBandsError(f"missing band(s) {', '.join(missing)}: the source has {', '.join(have)}")
    return [have.index(b) for b in want]


def select_bands(image: np.ndarray, available, wanted) -> np.ndarray:
    """Reorder/select the band axis (axis 0) of a (C, H, W) array from `available` into `wanted` order."""
    if image.shape[0] != len(available):
        raise ValueError(f"image has {image.shape[0]} bands but {len(available)} band names were given")
    return image[band_indices(available, wanted)]


# ------------------------------------------------------------------------------------------ band mapping

#: how `BandMapping` fills a model band that no input band stands for
FILLS: tuple[str, ...] = ("zeros", "mean", "nearest")
#: how a model band gets its values: from an input band of the same name, of a wavelength within the tolerance,
#: a copy of the nearest-wavelength input band, or a constant (zeros, the dataset mean)
HOWS: tuple[str, ...] = ("name", "wavelength", "nearest", "zeros", "mean")
_COPIES = ("name", "wavelength", "nearest")
MAX_MAPPED_BANDS = 64  # a record from a config.json names at most this many bands


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


@dataclass(frozen=True)
class BandMapping:
    """How a task's input bands feed a model's bands (default: the 12 pretraining bands, 4 spectral groups).

    Per model band: an input band of the same canonical name, else one whose centre wavelength lies within
    `tolerance_nm` (`equivalent_band`: HLS NIR_NARROW is B8A, OLI B4 is B4), else the `fill`: ``zeros`` (0 after
    normalisation), ``mean`` (the dataset mean after normalisation: 0 for a z-score, else measured on the
    training split and recorded in `value`) or ``nearest`` (a copy of the input band nearest in wavelength).
    An input band that feeds no model band is unused. The mapping is applied to *normalised* images (band axis
    -3, numpy or torch), after the per-input-band recipe, and serialises with the model (`to_dict`), so
    training, evaluation, `Predictor`, ``spectralgpt predict`` and the MLflow pyfunc apply the same record.
    """

    input_bands: tuple[str, ...]
    model_bands: tuple[str, ...]
    source: tuple[int | None, ...]  # per model band: the input index it copies; None for a constant
    how: tuple[str, ...]  # per model band: one of HOWS
    value: tuple[float | None, ...]  # per model band: the constant of zeros/mean, else None
    fill: str = "zeros"
    tolerance_nm: float = WAVELENGTH_TOLERANCE_NM

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def build(cls, input_bands, model_bands=PRETRAIN_BANDS, fill: str = "zeros", *, sensor: str | None = None,
              tolerance_nm: float = WAVELENGTH_TOLERANCE_NM, mean: float = 0.0) -> "BandMapping":
        """The mapping of `input_bands` (names as `canonical` takes them, with `sensor`) onto `model_bands`.

        Raises ValueError when no input band stands for any model band (nothing of the input would reach the
        model), naming the bands and the tolerance."""
        if fill not in FILLS:
            raise ValueError(f"fill {fill!r} is not one of {', '.join(FILLS)}")
        tol = float(tolerance_nm)
        if not 0 <= tol <= 100:
            raise ValueError(f"wavelength tolerance {tolerance_nm!r} nm must lie in [0, 100]")
        inputs = canonical_list(input_bands, sensor)
        models = canonical_list(model_bands)
        if not inputs:
            raise ValueError("the input band list is empty")
        best: dict[str, tuple[tuple, int, str]] = {}  # model band -> (rank key, input index, how)
        for i, b in enumerate(inputs):
            target = equivalent_band(b, models, tol)
            if target is None:
                continue
            how = "name" if target == b else "wavelength"
            key = (how != "name", abs(band_info(b).wavelength_nm - band_info(target).wavelength_nm), i)
            if target not in best or key < best[target][0]:
                best[target] = (key, i, how)
        if not best:
            raise ValueError(f"none of the input bands {', '.join(inputs)} is a model band or lies within {tol:g} nm "
                             f"of one ({', '.join(models)}); name the bands the data holds")
        wl = [band_info(b).wavelength_nm for b in inputs]
        source, how, value = [], [], []
        for m in models:
            if m in best:
                source.append(best[m][1])
                how.append(best[m][2])
                value.append(None)
            elif fill == "nearest":
                target = band_info(m).wavelength_nm
                source.append(min(range(len(inputs)), key=lambda k: (abs(wl[k] - target), wl[k], k)))
                how.append("nearest")
                value.append(None)
            else:
                source.append(None)
                how.append(fill)
                value.append(0.0 if fill == "zeros" else float(mean))
        return cls(inputs, models, tuple(source), tuple(how), tuple(value), fill, tol)

    def with_mean(self, mean: float) -> "BandMapping":
        """This mapping with every ``mean``-filled band set to the constant `mean` (a normalised value)."""
        mean = float(mean)
        if not np.isfinite(mean):
            raise ValueError(f"fill mean {mean!r} is not finite")
        value = tuple(mean if h == "mean" else v for h, v in zip(self.how, self.value))
        return BandMapping(self.input_bands, self.model_bands, self.source, self.how, value, self.fill,
                           self.tolerance_nm)

    # -- what it does ---------------------------------------------------------------------------------------
    @property
    def identity(self) -> bool:
        """The input already is the model's band list in the model's order: applying it changes nothing."""
        return self.input_bands == self.model_bands and all(h == "name" for h in self.how)

    @property
    def matched(self) -> dict[str, str]:
        """{model band: input band} of the model bands fed by an input band of that name or wavelength."""
        return {m: self.input_bands[s] for m, s, h in zip(self.model_bands, self.source, self.how)
                if h in ("name", "wavelength")}

    @property
    def filled(self) -> dict[str, str]:
        """{model band: how} of the model bands no input band stands for (zeros, mean or nearest)."""
        return {m: h for m, h in zip(self.model_bands, self.how) if h not in ("name", "wavelength")}

    @property
    def unused(self) -> tuple[str, ...]:
        """Input bands that feed no model band (e.g. OLI's thermal bands)."""
        used = {s for s in self.source if s is not None}
        return tuple(b for i, b in enumerate(self.input_bands) if i not in used)

    def describe(self) -> str:
        parts = []
        for m, s, h, v in zip(self.model_bands, self.source, self.how, self.value):
            if h in _COPIES:
                parts.append(f"{m}<-{self.input_bands[s]}" + ("" if h == "name" else f" ({h})"))
            else:
                parts.append(f"{m}={v:.4g} ({h})")
        unused = f"; unused: {', '.join(self.unused)}" if self.unused else ""
        return "; ".join(parts) + unused

    def apply(self, x):
        """(..., C_in, H, W) normalised input (numpy or torch) -> (..., C_model, H, W) in the model's order."""
        if x.shape[-3] != len(self.input_bands):
            raise ValueError(f"image has {x.shape[-3]} bands; this band mapping takes {len(self.input_bands)} "
                             f"({', '.join(self.input_bands)})")
        if self.identity:
            return x
        idx = [0 if s is None else s for s in self.source]
        consts = [(k, v) for k, v in enumerate(self.value) if self.source[k] is None]
        if _is_torch(x):
            import torch

            out = x.index_select(x.ndim - 3, torch.tensor(idx, device=x.device))
        else:
            out = np.take(x, idx, axis=-3)
        for k, v in consts:
            out[..., k, :, :] = v
        return out

    __call__ = apply

    # -- (de)serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        bands = []
        for m, s, h, v in zip(self.model_bands, self.source, self.how, self.value):
            entry = {"model": m, "how": h}
            if s is not None:
                entry.update(input=s, input_band=self.input_bands[s])
            else:
                entry["value"] = v
            bands.append(entry)
        return {"input_bands": list(self.input_bands), "model_bands": list(self.model_bands), "fill": self.fill,
                "tolerance_nm": self.tolerance_nm, "bands": bands, "unused": list(self.unused)}

    @classmethod
    def from_dict(cls, d) -> "BandMapping":
        """The mapping a saved record describes, applied as recorded (never re-derived, so a later change of the
        band tables cannot change a trained model's input). A malformed or inconsistent record is refused."""

        def bad(why):
            return ValueError(f"invalid band mapping record: {why}")

        if not isinstance(d, dict):
            raise bad(f"expected a mapping, got {type(d).__name__}")
        try:
            inputs, models = canonical_list(d["input_bands"]), canonical_list(d["model_bands"])
            fill, tol, entries = d["fill"], float(d["tolerance_nm"]), d["bands"]
        except KeyError as e:
            raise bad(f"missing entry {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise bad(str(e)) from None
        if not inputs or not models or max(len(inputs), len(models)) > MAX_MAPPED_BANDS:
            raise bad(f"{len(inputs)} input and {len(models)} model bands (each 1 to {MAX_MAPPED_BANDS})")
        if fill not in FILLS or not (np.isfinite(tol) and 0 <= tol <= 100):
            raise bad(f"fill {fill!r} (allowed: {', '.join(FILLS)}) or tolerance {tol!r} nm out of range")
        if not isinstance(entries, list) or len(entries) != len(models):
            raise bad(f"`bands` must list the {len(models)} model bands, one entry each")
        source, how, value = [], [], []
        for k, (m, e) in enumerate(zip(models, entries)):
            if not isinstance(e, dict) or e.get("model") != m or e.get("how") not in HOWS:
                raise bad(f"entry {k} must be {{model: {m!r}, how: one of {', '.join(HOWS)}, ...}}, got {e!r}")
            if e["how"] in _COPIES:
                s = e.get("input")
                if type(s) is not int or not 0 <= s < len(inputs) or e.get("input_band") != inputs[s]:
                    raise bad(f"entry {k} ({m}) must name an input index in [0, {len(inputs)}) and its band")
                source.append(s)
                value.append(None)
            else:
                v = e.get("value")
                if type(v) not in (int, float) or not np.isfinite(v) or (e["how"] == "zeros" and v != 0):
                    raise bad(f"entry {k} ({m}) needs a finite `value` (0 for zeros), got {v!r}")
                source.append(None)
                value.append(float(v))
            how.append(e["how"])
        if not any(h in ("name", "wavelength") for h in how):
            raise bad("no model band is fed by an input band")
        return cls(inputs, models, tuple(source), tuple(how), tuple(value), fill, tol)
