"""A deterministic, physically plausible synthetic Sentinel-2 corpus in the public datasets' layouts.

Every scene is built at 10 m as a map of *materials* (water, forest, crop, soil, roofs, asphalt, snow, cloud,
...), each with a surface-reflectance spectrum over the 13 Sentinel-2 bands (vegetation: red edge and high
NIR; water: dark NIR/SWIR; soil: rising spectrum; urban: flat and bright; snow/cloud: bright visible, dark
SWIR). Spatial structure comes from small procedural generators (Voronoi field parcels, meandering rivers,
road lines, building rectangles, textured forest canopies, orchard rows, cloud blobs). Each band is then
averaged to its native resolution (20 m / 60 m bands are smoother), sensor noise is added per band at that
resolution, a band-dependent path radiance is added for top-of-atmosphere (L1C) products, and the result
is stored as reflectance x 10000 in real georeferenced GeoTIFFs (UTM CRS, 10/20/60 m transforms).

The synthetic BigEarthNet is a land-cover mixture: each patch draws 1-4 CORINE classes by frequency, gives each
an area fraction (at least 15 %) as blobby polygons (a river as a band), paints each with its own composer and
multiplies it by its class's spectral signature, so each label adds its class spectrum in proportion to its area.
A logistic regression on per-band means then reaches about 0.55 micro mAP on the demo's test split (prevalence:
0.25); the rest is texture and structure, left for a model to learn.

Layouts (the same ones the dataset readers follow), written under ``root`` by :func:`generate`:

``eurosat``       ``<Class>/<Class>_<n>.tif`` (13 bands uint16 64x64, file order B1..B12 then **B8A last**),
                  ``eurosat-{train,val,test}.txt`` (file names).
``bigearthnet``   ``<patch>/<patch>_B01.tif .. _B12.tif, _B8A.tif`` (12 single-band uint16 files, no B10;
                  120/60/20 px at 10/20/60 m), ``<patch>/<patch>_labels_metadata.json`` (CORINE level-3
                  names) and ``{train,val,test}.csv`` (one patch name per line, no header).
``segmunich``     ``dataset/{train,test}.txt``, ``<split>/img/<name>.tif`` (10 bands B2,B3,B4,B5,B6,B7,B8,B8A,
                  B11,B12) and ``<split>/label/<name>.tif`` (uint8 SegMunich codes, see SEGMUNICH_CODES).
``oscd``          ``<city>/imgs_1/<prefix1>_B01.tif ..`` and ``imgs_2/<prefix2>_Bxx.tif`` (13 single-band
                  files each at native resolution), ``<city>/cm/<city>-cm.tif`` (uint8, 1 = no change,
                  2 = change), ``train.txt`` / ``test.txt`` (one line of comma-separated city names).
``sen1floods11``  ``S2Hand/<Region>_<id>_S2Hand.tif`` (13 bands int16, B1..B8, B8A, B9..B12, nodata 0) and
                  ``LabelHand/<Region>_<id>_LabelHand.tif`` (int16: -1 no data, 0 land, 1 water).
``pretrain``      ``<n>.tif`` (12 bands in PRETRAIN_BANDS order, uint16), or with ``tar_size=K`` the same
                  files packed K at a time into ``pretrain-<k>.tar`` (readable through GDAL's /vsitar/).

Determinism: sample ``i`` of kind ``k`` is drawn from its own generator seeded by ``(seed, k, i)``, GeoTIFFs
are encoded in memory with fixed creation options and tar members carry fixed metadata, so the same seed
gives byte-identical files whatever the worker count.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import tarfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from scipy.ndimage import gaussian_filter
from tqdm.auto import tqdm

from spectralgpt.bands import ALL_BANDS, BANDS, PRETRAIN_BANDS
from spectralgpt.io.atomic import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

KINDS = ("eurosat", "bigearthnet", "segmunich", "oscd", "sen1floods11", "pretrain")

EUROSAT_CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)
#: EuroSAT MS file band order (B8A stored last).
EUROSAT_FILE_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B8A")
#: BigEarthNet v1.0 per-band files (no B10).
BIGEARTHNET_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
SEGMUNICH_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
#: Sen1Floods11 S2Hand order (B8A at index 8).
SEN1FLOODS11_BANDS = ALL_BANDS

#: SegMunich label codes as stored in the label tifs (CORINE-like two-digit codes; water is 5).
SEGMUNICH_CODES = {
    0: "background", 21: "arable land", 22: "permanent crops", 23: "pastures", 31: "forests",
    5: "surface water", 32: "shrub", 33: "open spaces", 41: "wetlands", 13: "mine, dump",
    14: "artificial vegetation", 11: "urban fabric", 12: "buildings",
}

#: The 43-class CORINE level-3 nomenclature of BigEarthNet v1.0.
CORINE_43 = (
    "Continuous urban fabric", "Discontinuous urban fabric", "Industrial or commercial units",
    "Road and rail networks and associated land", "Port areas", "Airports", "Mineral extraction sites",
    "Dump sites", "Construction sites", "Green urban areas", "Sport and leisure facilities",
    "Non-irrigated arable land", "Permanently irrigated land", "Rice fields", "Vineyards",
    "Fruit trees and berry plantations", "Olive groves", "Pastures",
    "Annual crops associated with permanent crops", "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas", "Broad-leaved forest", "Coniferous forest", "Mixed forest", "Natural grassland",
    "Moors and heathland", "Sclerophyllous vegetation", "Transitional woodland/shrub",
    "Beaches, dunes, sands", "Bare rock", "Sparsely vegetated areas", "Burnt areas", "Inland marshes",
    "Peatbogs", "Salt marshes", "Salines", "Intertidal flats", "Water courses", "Water bodies",
    "Coastal lagoons", "Estuaries", "Sea and ocean",
)

SEN1FLOODS11_REGIONS = ("Bolivia", "Ghana", "India", "Mekong", "Nigeria", "Pakistan", "Paraguay", "Somalia",
                        "Spain", "Sri-Lanka", "USA")
OSCD_CITIES = ("aguasclaras", "bercy", "bordeaux", "nantes", "paris", "rennes", "saclay_e", "abudhabi",
               "cupertino", "pisa", "beihai", "hongkong", "beirut", "mumbai", "brasilia", "montpellier",
               "norcia", "rio", "saclay_w", "valencia", "dubai", "lasvegas", "milano", "chongqing")

# --------------------------------------------------------------------------------------------------------
# Materials: surface reflectance over the 13 bands in ALL_BANDS order
# (B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12).
# --------------------------------------------------------------------------------------------------------
_SPECTRA = {
    "water":     (.045, .040, .035, .022, .018, .014, .012, .010, .009, .006, .001, .004, .003),
    "turbid":    (.060, .062, .072, .052, .042, .030, .025, .020, .018, .010, .001, .008, .005),
    "conifer":   (.020, .022, .040, .020, .070, .190, .240, .260, .270, .090, .002, .120, .050),
    "broadleaf": (.025, .030, .060, .030, .100, .280, .360, .390, .400, .130, .002, .190, .080),
    "crop":      (.030, .035, .075, .035, .125, .340, .430, .460, .470, .150, .003, .230, .110),
    "grass":     (.040, .045, .085, .060, .130, .260, .300, .320, .330, .110, .003, .270, .160),
    "shrub":     (.050, .055, .080, .085, .130, .190, .220, .240, .250, .090, .003, .300, .200),
    "soil":      (.070, .080, .110, .150, .180, .200, .215, .230, .240, .080, .004, .330, .280),
    "concrete":  (.110, .120, .140, .160, .170, .180, .190, .200, .205, .070, .004, .230, .200),
    "roof":      (.070, .070, .090, .170, .190, .200, .210, .220, .225, .075, .004, .260, .220),
    "metal":     (.200, .210, .220, .230, .235, .240, .245, .250, .250, .085, .005, .240, .210),
    "asphalt":   (.060, .065, .070, .075, .080, .085, .088, .090, .092, .032, .002, .100, .090),
    "snow":      (.850, .880, .860, .830, .800, .780, .760, .740, .720, .300, .020, .080, .050),
    "cloud":     (.550, .560, .570, .580, .580, .580, .590, .590, .590, .300, .150, .420, .320),
    "wetland":   (.030, .035, .055, .040, .080, .170, .200, .210, .215, .070, .002, .100, .050),
    "sand":      (.120, .150, .200, .260, .290, .310, .320, .330, .340, .110, .005, .420, .360),
    "rock":      (.100, .110, .130, .150, .160, .170, .180, .180, .190, .065, .004, .240, .220),
    "burnt":     (.040, .040, .045, .050, .060, .070, .075, .080, .085, .030, .002, .150, .160),
    # appended for the synthetic BigEarthNet's classes (indices above stay put, so other layouts are unchanged)
    "sea":       (.050, .045, .030, .012, .008, .005, .004, .003, .003, .002, .001, .002, .001),
    "lake":      (.035, .038, .058, .034, .045, .022, .018, .015, .014, .008, .001, .005, .003),
    "reed":      (.030, .035, .060, .045, .095, .200, .240, .255, .260, .085, .002, .160, .080),
    "peat":      (.025, .028, .042, .040, .065, .110, .130, .140, .145, .050, .002, .090, .050),
    "heath":     (.030, .035, .050, .055, .085, .140, .160, .175, .180, .065, .003, .190, .120),
    "sclerophyll": (.045, .050, .070, .075, .115, .165, .185, .195, .205, .075, .003, .290, .210),
    "drygrass":  (.050, .060, .090, .100, .140, .190, .210, .225, .235, .085, .003, .320, .230),
    "garden":    (.030, .040, .095, .040, .150, .330, .400, .420, .430, .140, .003, .180, .080),
    "orchard":   (.040, .045, .075, .055, .120, .240, .280, .300, .310, .100, .003, .260, .170),
}
MATERIALS = tuple(_SPECTRA)
_MAT = {m: i for i, m in enumerate(MATERIALS)}
SPECTRA = np.array([_SPECTRA[m] for m in MATERIALS], dtype=np.float32)  # (n_materials, 13)

# Top-of-atmosphere path radiance (reflectance units) added for L1C products; strongest in the blue.
_PATH_RADIANCE = np.array([.090, .060, .035, .020, .015, .012, .010, .008, .008, .004, .001, .002, .001],
                          dtype=np.float32)
# Sensor noise (reflectance units, 1 sigma) per band at native resolution.
_NOISE = np.array([.004, .003, .003, .003, .003, .003, .003, .003, .003, .004, .001, .003, .003],
                  dtype=np.float32)
_RES = np.array([BANDS[b].resolution_m for b in ALL_BANDS])


# --------------------------------------------------------------------------------------------------------
# Canvas and procedural generators (all at 10 m)
# --------------------------------------------------------------------------------------------------------
class Canvas:
    """A scene at 10 m: per pixel a main material, a mixing material, the main fraction and a gain."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.m1 = np.full((h, w), _MAT["grass"], dtype=np.int8)
        self.m2 = self.m1.copy()
        self.f = np.ones((h, w), dtype=np.float32)
        self.g = np.ones((h, w), dtype=np.float32)
        self.tint = None  # optional (13, H, W) per-band factor: a land-cover class's own spectral signature
        yy, xx = np.mgrid[0:h, 0:w]
        self.yy = yy.astype(np.float32)
        self.xx = xx.astype(np.float32)

    def paint(self, mask, mat, mat2=None, f=None, g=None):
        mask = np.broadcast_to(mask, (self.h, self.w))
        self.m1[mask] = _MAT[mat] if isinstance(mat, str) else np.asarray(mat)[mask] if np.ndim(mat) else mat
        m2 = mat if mat2 is None else mat2
        self.m2[mask] = _MAT[m2] if isinstance(m2, str) else np.asarray(m2)[mask] if np.ndim(m2) else m2
        self.f[mask] = 1.0 if f is None else (np.asarray(f, np.float32)[mask] if np.ndim(f) else f)
        self.g[mask] = 1.0 if g is None else (np.asarray(g, np.float32)[mask] if np.ndim(g) else g)

    def reflectance(self) -> np.ndarray:
        """(13, H, W) float32 surface reflectance."""
        a = SPECTRA[self.m1.astype(np.intp)]
        b = SPECTRA[self.m2.astype(np.intp)]
        f = self.f[..., None]
        r = (f * a + (1.0 - f) * b) * self.g[..., None]
        r = r.transpose(2, 0, 1)
        return np.ascontiguousarray(r if self.tint is None else r * self.tint)


def _noise(rng, h, w, sigma):
    """Smooth Gaussian random field with unit standard deviation."""
    z = gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), sigma, mode="wrap")
    s = z.std()
    return z / s if s > 0 else z


def _voronoi(rng, cv, n, aniso=1.0, angle=None):
    """Parcel ids from the nearest of n random seeds (stretched by `aniso` along a random direction)."""
    n = max(1, int(n))
    sy = rng.uniform(-0.1, 1.1, n) * cv.h
    sx = rng.uniform(-0.1, 1.1, n) * cv.w
    a = rng.uniform(0, np.pi) if angle is None else angle
    c, s = np.cos(a), np.sin(a)
    best = np.full((cv.h, cv.w), np.inf, dtype=np.float32)
    lab = np.zeros((cv.h, cv.w), dtype=np.int32)
    for k in range(n):
        dy, dx = cv.yy - sy[k], cv.xx - sx[k]
        u, v = c * dx + s * dy, -s * dx + c * dy
        d = u * u + (aniso * v) ** 2
        m = d < best
        best[m] = d[m]
        lab[m] = k
    return lab, n


def _boundaries(lab):
    e = np.zeros(lab.shape, dtype=bool)
    e[:-1] |= lab[:-1] != lab[1:]
    e[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    return e


def _line(cv, rng, width, angle=None, offset=None):
    """Mask of a straight band of `width` px through the scene."""
    a = rng.uniform(0, np.pi) if angle is None else angle
    cy = cv.h / 2 + (rng.uniform(-0.3, 0.3) * cv.h if offset is None else offset)
    cx = cv.w / 2 + rng.uniform(-0.3, 0.3) * cv.w
    d = np.abs(-np.sin(a) * (cv.xx - cx) + np.cos(a) * (cv.yy - cy))
    return d < width / 2


def _river(cv, rng, width):
    a = rng.uniform(0, np.pi)
    c, s = np.cos(a), np.sin(a)
    cx, cy = cv.w / 2 + rng.uniform(-.2, .2) * cv.w, cv.h / 2 + rng.uniform(-.2, .2) * cv.h
    u = c * (cv.xx - cx) + s * (cv.yy - cy)
    v = -s * (cv.xx - cx) + c * (cv.yy - cy)
    size = max(cv.h, cv.w)
    amp = rng.uniform(0.03, 0.12) * size
    k = rng.uniform(1.0, 3.0) * 2 * np.pi / size
    centre = amp * np.sin(k * u + rng.uniform(0, 2 * np.pi)) + 0.3 * amp * np.sin(2.3 * k * u + 1.0)
    return np.abs(v - centre), width / 2


def _rects(cv, rng, n, smin, smax, region=None):
    m = np.zeros((cv.h, cv.w), dtype=bool)
    for _ in range(int(n)):
        hh, ww = rng.integers(smin, smax + 1, 2)
        y, x = rng.integers(0, max(1, cv.h - hh + 1)), rng.integers(0, max(1, cv.w - ww + 1))
        m[y:y + hh, x:x + ww] = True
    return m if region is None else m & region


# --------------------------------------------------------------------------------------------------------
# Land-cover composers: each paints `region` of the canvas.
# --------------------------------------------------------------------------------------------------------
def arable(cv, rng, region, field_px=28, natural=0.0, crop_share=0.6, soil_share=0.25, crop="crop"):
    lab, n = _voronoi(rng, cv, cv.h * cv.w / field_px ** 2 * rng.uniform(0.7, 1.4), aniso=rng.uniform(1.5, 3))
    kind = rng.random(n)  # per field: crop / bare soil / grass
    vigor = rng.uniform(0.35, 1.0, n).astype(np.float32)
    gain = rng.normal(1.0, 0.07, n).astype(np.float32)
    tex = 1 + 0.03 * _noise(rng, cv.h, cv.w, 1.0)
    crops = kind[lab] < crop_share
    soil = (kind[lab] >= crop_share) & (kind[lab] < crop_share + soil_share)
    cv.paint(region & crops, crop, "soil", vigor[lab], gain[lab] * tex)
    cv.paint(region & soil, "soil", crop, np.float32(0.92), gain[lab] * tex)
    cv.paint(region & ~crops & ~soil, "grass", "soil", np.float32(0.9), gain[lab] * tex)
    cv.paint(region & _boundaries(lab), "grass", "shrub", np.float32(0.6))
    if natural > 0:
        forest(cv, rng, region & (_noise(rng, cv.h, cv.w, 3) > 1.6 - 2 * natural))


def pasture(cv, rng, region, trees=True):
    vig = np.clip(0.85 + 0.08 * _noise(rng, cv.h, cv.w, 4), 0, 1)
    cv.paint(region, "grass", "soil", vig, 1 + 0.03 * _noise(rng, cv.h, cv.w, 1))
    if trees:
        cv.paint(region & (_noise(rng, cv.h, cv.w, 1.2) > 2.3), "broadleaf", "grass", np.float32(0.8))


def herbaceous(cv, rng, region, woody=0.0):
    z = _noise(rng, cv.h, cv.w, 2.5)
    z2 = _noise(rng, cv.h, cv.w, 1.0)
    cv.paint(region, "grass", "shrub", np.clip(0.5 + 0.3 * z, 0, 1), 1 + 0.06 * z2)
    cv.paint(region & (z > 0.9), "shrub", "soil", np.float32(0.75), 1 + 0.06 * z2)
    cv.paint(region & (z < -1.2), "soil", "grass", np.float32(0.7))
    cv.paint(region & (z2 > 2.0 - woody * 2), "broadleaf", "shrub", np.float32(0.7))


def forest(cv, rng, region, kind="mixed"):
    if kind == "mixed":
        mix = _noise(rng, cv.h, cv.w, 6) > rng.uniform(-0.5, 0.5)
        mats = np.where(mix, _MAT["conifer"], _MAT["broadleaf"]).astype(np.int8)
    else:
        mats = np.int8(_MAT[kind])
    crowns = _noise(rng, cv.h, cv.w, 0.8)
    gain = np.clip(1 + 0.18 * crowns + 0.05 * _noise(rng, cv.h, cv.w, 5), 0.5, 1.5)
    cv.paint(region, mats, mats, np.float32(1), gain)


def permanent_crop(cv, rng, region, period=None, tree="broadleaf"):
    lab, n = _voronoi(rng, cv, cv.h * cv.w / 40 ** 2 + 1)
    ang = rng.uniform(0, np.pi, n)
    per = rng.uniform(3, 5, n) if period is None else np.full(n, period)
    u = np.cos(ang[lab]) * cv.xx + np.sin(ang[lab]) * cv.yy
    rows = 0.5 + 0.5 * np.cos(2 * np.pi * u / per[lab])
    under = np.where(rng.random(n)[lab] < 0.6, _MAT["soil"], _MAT["grass"]).astype(np.int8)
    cv.paint(region, tree, under, (0.25 + 0.6 * rows).astype(np.float32))
    cv.paint(region & _boundaries(lab), "asphalt", "soil", np.float32(0.5))


def residential(cv, rng, region, dense=False):
    ang = rng.uniform(0, np.pi / 2)
    c, s = np.cos(ang), np.sin(ang)
    u, v = c * cv.xx + s * cv.yy, -s * cv.xx + c * cv.yy
    bs = rng.uniform(9, 15)
    street = ((u % bs) < 1.3) | ((v % (bs * rng.uniform(1, 1.6))) < 1.3)
    gardens = "concrete" if dense else "grass"
    cv.paint(region, gardens, "broadleaf", np.clip(0.7 + 0.3 * _noise(rng, cv.h, cv.w, 1), 0, 1))
    jitter = _noise(rng, cv.h, cv.w, 0.7)
    houses = ((u % bs) > 2.5) & ((u % bs) < bs - 1.5) & (jitter > (-1.0 if dense else 0.1))
    roof = np.where(_noise(rng, cv.h, cv.w, 1.5) > 0, _MAT["roof"], _MAT["concrete"]).astype(np.int8)
    cv.paint(region & houses & ~street, roof, roof, np.float32(1), np.float32(rng.uniform(0.9, 1.15)))
    cv.paint(region & street, "asphalt")


def industrial(cv, rng, region):
    cv.paint(region, "concrete", "asphalt", np.clip(0.6 + 0.2 * _noise(rng, cv.h, cv.w, 3), 0, 1))
    area = cv.h * cv.w
    big = _rects(cv, rng, max(2, area // 700), 6, max(8, min(cv.h, cv.w) // 3), region)
    roofs = np.where(_noise(rng, cv.h, cv.w, 8) > -0.3, _MAT["metal"], _MAT["concrete"]).astype(np.int8)
    cv.paint(big, roofs, roofs, np.float32(1), np.float32(rng.uniform(0.95, 1.2)))
    cv.paint(region & _line(cv, rng, 2.0), "asphalt")
    cv.paint(region & ~big & (_noise(rng, cv.h, cv.w, 1.5) > 1.8), "grass")


def highway(cv, rng, region):
    (arable if rng.random() < 0.5 else pasture)(cv, rng, region)
    w = rng.uniform(3.0, 6.0)
    a = rng.uniform(0, np.pi)
    verge = _line(cv, rng, w + 3, angle=a, offset=0)
    road = _line(cv, rng, w, angle=a, offset=0)
    cv.paint(region & verge, "grass", "shrub", np.float32(0.7))
    cv.paint(region & road, "asphalt", "concrete", np.float32(0.85))
    if rng.random() < 0.3:
        cv.paint(region & _line(cv, rng, w * 0.6), "asphalt")


def river(cv, rng, region, width=None):
    bg = rng.choice(3)
    (pasture, arable, forest)[bg](cv, rng, region)
    d, half = _river(cv, rng, rng.uniform(3, 10) if width is None else width)
    cv.paint(region & (d < half + 2), "broadleaf", "grass", np.float32(0.8))
    cv.paint(region & (d < half), "turbid", "water", np.float32(rng.uniform(0.2, 1.0)))


def water(cv, rng, region, shore=True):
    cv.paint(region, "water", "turbid", np.clip(0.8 + 0.1 * _noise(rng, cv.h, cv.w, 6), 0, 1),
             1 + 0.02 * _noise(rng, cv.h, cv.w, 2))
    if shore and rng.random() < 0.6:
        a = rng.uniform(0, 2 * np.pi)
        u = np.cos(a) * (cv.xx - cv.w / 2) + np.sin(a) * (cv.yy - cv.h / 2)
        land = u + 3 * _noise(rng, cv.h, cv.w, 3) > rng.uniform(0.25, 0.45) * max(cv.h, cv.w)
        cv.paint(region & land, "sand" if rng.random() < 0.4 else "grass", "shrub", np.float32(0.8))


def _simple(mat, mat2, tex=0.08, sigma=2.0):
    def compose(cv, rng, region):
        cv.paint(region, mat, mat2, np.clip(0.75 + 0.2 * _noise(rng, cv.h, cv.w, sigma), 0, 1),
                 1 + tex * _noise(rng, cv.h, cv.w, 1))
    return compose


sand = _simple("sand", "rock", 0.05)
rock = _simple("rock", "soil", 0.12, 1.0)
sparse = _simple("soil", "shrub", 0.08)
wetland = _simple("wetland", "water", 0.05, 3.0)
burnt = _simple("burnt", "soil", 0.1)
snow = _simple("snow", "rock", 0.04, 4.0)

EUROSAT_COMPOSERS = {
    "AnnualCrop": arable, "Forest": forest, "HerbaceousVegetation": herbaceous, "Highway": highway,
    "Industrial": industrial, "Pasture": pasture, "PermanentCrop": permanent_crop,
    "Residential": residential, "River": river, "SeaLake": water,
}

# CORINE level-3 name -> (composer, relative frequency in the synthetic BigEarthNet)
_CORINE_COMPOSERS = {
    "Continuous urban fabric": (lambda cv, r, m: residential(cv, r, m, dense=True), 1),
    "Discontinuous urban fabric": (residential, 4),
    "Industrial or commercial units": (industrial, 2),
    "Road and rail networks and associated land": (highway, 1),
    "Mineral extraction sites": (sparse, 0.5),
    "Green urban areas": (lambda cv, r, m: pasture(cv, r, m, trees=True), 0.5),
    "Non-irrigated arable land": (lambda cv, r, m: arable(cv, r, m, crop_share=0.5, soil_share=0.45), 10),
    "Vineyards": (lambda cv, r, m: permanent_crop(cv, r, m, period=3.0, tree="orchard"), 1),
    "Fruit trees and berry plantations": (lambda cv, r, m: permanent_crop(cv, r, m, period=5.0, tree="orchard"), 1),
    "Olive groves": (lambda cv, r, m: permanent_crop(cv, r, m, period=6.0, tree="orchard"), 0.5),
    "Pastures": (pasture, 7),
    "Complex cultivation patterns":
        (lambda cv, r, m: arable(cv, r, m, field_px=12, crop_share=0.5, soil_share=0.2, crop="garden"), 5),
    "Land principally occupied by agriculture, with significant areas of natural vegetation":
        (lambda cv, r, m: arable(cv, r, m, natural=0.5), 5),
    "Broad-leaved forest": (lambda cv, r, m: forest(cv, r, m, "broadleaf"), 5),
    "Coniferous forest": (lambda cv, r, m: forest(cv, r, m, "conifer"), 7),
    "Mixed forest": (forest, 7),
    "Natural grassland": (_simple("drygrass", "grass", 0.05, 3.0), 1),
    "Moors and heathland": (_simple("heath", "shrub", 0.06), 1),
    "Sclerophyllous vegetation": (_simple("sclerophyll", "soil", 0.08, 1.5), 1),
    "Transitional woodland/shrub": (lambda cv, r, m: herbaceous(cv, r, m, woody=0.6), 5),
    "Beaches, dunes, sands": (sand, 0.5),
    "Bare rock": (rock, 0.5),
    "Sparsely vegetated areas": (sparse, 0.5),
    "Burnt areas": (burnt, 0.2),
    "Inland marshes": (_simple("reed", "water", 0.05, 3.0), 0.7),
    "Peatbogs": (_simple("peat", "wetland", 0.05, 3.0), 0.7),
    "Water courses": (None, 1.5),  # a river band through the patch, drawn by _bigearthnet_scene
    "Water bodies": (_simple("lake", "turbid", 0.03, 4.0), 3),
    "Sea and ocean": (_simple("sea", "water", 0.02, 6.0), 3),
}
assert set(_CORINE_COMPOSERS) <= set(CORINE_43)


@functools.lru_cache(maxsize=4)
def _class_signatures(amplitude: float) -> dict[str, np.ndarray]:
    """A fixed spectral signature per BigEarthNet-19 class: a smooth per-band factor (1 +- `amplitude`) over
    log-wavelength, as species, moisture and phenology shift one land cover's spectrum away from another's.
    Without it the classes would be mixtures of the same few materials, which no linear unmixing separates."""
    from spectralgpt.data.sources.bigearthnet import LABELS_19

    lam = np.log([BANDS[b].wavelength_nm for b in ALL_BANDS])
    x = (lam - lam.min()) / (lam.max() - lam.min())
    out = {}
    for k, name in enumerate(LABELS_19):
        r = np.random.default_rng(np.random.SeedSequence([20170613, k]))
        v = sum(r.normal() / j * np.cos(j * np.pi * x + r.uniform(0, 2 * np.pi)) for j in (1, 2, 3))
        out[name] = (1 + amplitude * v / np.abs(v).max()).astype(np.float32)
    return out

# SegMunich zone code -> composer
_SEGMUNICH_COMPOSERS = {
    21: arable, 22: permanent_crop, 23: pasture, 31: forest, 5: water, 32: herbaceous,
    33: sparse, 41: wetland, 13: rock, 14: lambda cv, r, m: pasture(cv, r, m, trees=False),
    11: residential, 12: industrial,
}
_SEGMUNICH_WEIGHTS = {21: 6, 22: 1, 23: 4, 31: 5, 5: 1.5, 32: 1.5, 33: 0.7, 41: 0.7, 13: 0.5, 14: 1.5,
                      11: 5, 12: 2}


def _choice(rng, weights: dict):
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[rng.choice(len(keys), p=p / p.sum())]


def _zones(cv, rng, k):
    """Split the scene into k irregular zones."""
    if k <= 1:
        return np.zeros((cv.h, cv.w), dtype=np.int32)
    lab, _ = _voronoi(rng, cv, k, aniso=1.0)
    # wobble the borders
    z = _noise(rng, cv.h, cv.w, 4) * 0.08 * max(cv.h, cv.w)
    ys = np.clip((cv.yy + z).astype(int), 0, cv.h - 1)
    xs = np.clip((cv.xx - z).astype(int), 0, cv.w - 1)
    return lab[ys, xs]


def _clouds(cv, rng, cover):
    """Paint clouds (and their shadows) over a fraction `cover` of the scene; returns the cloud mask."""
    z = _noise(rng, cv.h, cv.w, max(3.0, cv.h / 16))
    thr = np.quantile(z, 1 - cover)
    opacity = np.clip((z - thr) * 2.0, 0, 1).astype(np.float32)
    sh = np.roll(opacity, (int(cv.h * 0.06) + 1, int(cv.w * 0.04) + 1), axis=(0, 1))
    cv.g *= 1 - 0.5 * sh * (opacity < 0.05)
    m = opacity > 0
    # blend: main material becomes cloud with fraction = opacity, the ground stays as mixing material
    ground = cv.m1.copy()
    cv.m2[m] = ground[m]
    cv.m1[m] = _MAT["cloud"]
    cv.f[m] = opacity[m]
    cv.g[m] = 1.0
    return opacity > 0.3


# --------------------------------------------------------------------------------------------------------
# Sensor model
# --------------------------------------------------------------------------------------------------------
def _block_mean(x, f):
    """Average (H, W) in f x f blocks (edge-padded to a multiple of f) -> (ceil(H/f), ceil(W/f))."""
    if f == 1:
        return x
    h, w = x.shape
    H, W = -(-h // f) * f, -(-w // f) * f
    if (H, W) != (h, w):
        x = np.pad(x, ((0, H - h), (0, W - w)), mode="edge")
    return x.reshape(H // f, f, W // f, f).mean(axis=(1, 3))


def sense(refl, rng, bands=ALL_BANDS, level="L1C", native=False, haze=None):
    """Turn (13, H, W) 10 m reflectance into digital numbers (reflectance x 10000, float32).

    Each band is averaged to its native resolution and gets sensor noise there; with ``native=False`` the
    coarse bands are put back on the 10 m grid by pixel replication (what a stacked product looks like),
    else a list of native-resolution arrays is returned. ``level='L1C'`` adds path radiance.
    """
    h, w = refl.shape[1:]
    haze = rng.uniform(0.6, 1.4) if haze is None else haze
    gain = rng.normal(1.0, 0.02)
    out = []
    for b in bands:
        i = ALL_BANDS.index(b)
        f = int(_RES[i] // 10)
        x = _block_mean(refl[i], f) * gain
        if level == "L1C":
            x = x + _PATH_RADIANCE[i] * haze
        else:
            x = x + _PATH_RADIANCE[i] * 0.1
        x = x + rng.standard_normal(x.shape).astype(np.float32) * _NOISE[i]
        x = np.clip(x * 10000.0, 1.0, 65535.0)
        if not native and f > 1:
            x = np.repeat(np.repeat(x, f, axis=0), f, axis=1)[:h, :w]
        out.append(x.astype(np.float32))
    return out if native else np.stack(out)


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------
def _georef(rng, res=10.0):
    epsg = int(rng.choice([32631, 32632, 32633, 32634, 32635]))
    x0 = float(rng.integers(3000, 12000) * 60)
    y0 = float(rng.integers(75000, 95000) * 60)
    return CRS.from_epsg(epsg), x0, y0


def tif_bytes(arr, crs, transform, *, nodata=None, descriptions=None, compress="deflate") -> bytes:
    """Encode a (C, H, W) or (H, W) array as a GeoTIFF in memory with fixed creation options."""
    if arr.ndim == 2:
        arr = arr[None]
    profile = dict(driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                   dtype=arr.dtype.name, crs=crs, transform=transform, interleave="band" if arr.shape[0] > 1 else "pixel")
    if nodata is not None:
        profile["nodata"] = nodata
    if compress:
        profile.update(compress=compress, predictor=2 if arr.dtype.kind in "iu" else 1)
    with MemoryFile() as mf:
        with mf.open(**profile) as dst:
            dst.write(arr)
            if descriptions:
                for k, d in enumerate(descriptions, 1):
                    dst.set_band_description(k, d)
        return bytes(mf.read())


_KIND_ID = {k: i + 1 for i, k in enumerate(KINDS)}


def sample_rng(seed: int, kind: str, i: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), _KIND_ID[kind], int(i)]))


def _u16(x):
    return np.clip(np.rint(x), 0, 65535).astype(np.uint16)


# --------------------------------------------------------------------------------------------------------
# Per-kind sample renderers: return {relative path: bytes}
# --------------------------------------------------------------------------------------------------------
def render_eurosat_scene(cls: str, rng, size=64) -> Canvas:
    cv = Canvas(size, size)
    EUROSAT_COMPOSERS[cls](cv, rng, np.ones((size, size), bool))
    return cv


def _eurosat_sample(seed, i, size, compress):
    rng = sample_rng(seed, "eurosat", i)
    cls = EUROSAT_CLASSES[i % len(EUROSAT_CLASSES)]
    n = i // len(EUROSAT_CLASSES) + 1
    cv = render_eurosat_scene(cls, rng, size)
    dn = sense(cv.reflectance(), rng, EUROSAT_FILE_BANDS, level="L1C")
    crs, x0, y0 = _georef(rng)
    name = f"{cls}_{n}.tif"
    return {f"{cls}/{name}": tif_bytes(_u16(dn), crs, Affine(10, 0, x0, 0, -10, y0), compress=compress)}


def _mixture_zones(cv, rng, fractions, free):
    """Blobby land-cover polygons over the `free` pixels with about the given area fractions: each class owns
    the pixels where its smooth random field (plus a bias fitted to its fraction) is highest."""
    k = len(fractions)
    if k == 1:
        return np.zeros((cv.h, cv.w), dtype=np.int32)
    fields = np.stack([_noise(rng, cv.h, cv.w, max(cv.h, cv.w) / 10) for _ in range(k)])
    target = np.asarray(fractions, np.float64)
    bias = np.zeros(k)
    for _ in range(40):
        lab = np.argmax(fields + bias[:, None, None], axis=0)
        area = np.bincount(lab[free], minlength=k) / max(1, free.sum())
        bias += 2.0 * (target - area)
    return np.argmax(fields + bias[:, None, None], axis=0)


def _bigearthnet_scene(rng, size, min_fraction=0.15, n_classes=(1, 2, 2, 3, 3, 4), amplitude=0.3):
    """A patch as a land-cover mixture: 1-4 CORINE classes drawn by their frequency, each given an area fraction
    (at least `min_fraction`) and painted with its own composer, so each label adds its class spectrum to the
    patch in proportion to its area (what makes the labels learnable from the spectra, as in BigEarthNet)."""
    cv = Canvas(size, size)
    k = int(rng.choice(n_classes))
    weights = {c: w for c, (_, w) in _CORINE_COMPOSERS.items()}
    names = []
    for _ in range(k):
        names.append(_choice(rng, {c: w for c, w in weights.items() if c not in names}))
    fractions = min_fraction + (1 - min_fraction * k) * rng.dirichlet(np.full(k, 1.5))
    free = np.ones((size, size), bool)
    if "Water courses" in names and k > 1:  # the river is a band, the other classes share its banks
        j = names.index("Water courses")
        d, half = _river(cv, rng, float(np.clip(fractions[j] * size, 4, size / 2)))
        free = d >= half
        others = [n for n in names if n != "Water courses"]
        rest = np.delete(fractions, j)
        zones = _mixture_zones(cv, rng, rest / rest.sum(), free)
        regions = {n: free & (zones == z) for z, n in enumerate(others)}
        regions["Water courses"] = ~free
    else:
        zones = _mixture_zones(cv, rng, fractions, free)
        regions = {n: zones == z for z, n in enumerate(names)}
    from spectralgpt.data.sources.bigearthnet import TO_19

    sig = _class_signatures(amplitude)
    cv.tint = np.ones((13, size, size), np.float32)
    labels = []
    for name in names:
        region = regions[name]
        if name == "Water courses":
            _paint_water_course(cv, rng, region)
        else:
            _CORINE_COMPOSERS[name][0](cv, rng, region)
        if TO_19[name] is not None:
            cv.tint[:, region] = sig[TO_19[name]][:, None]
        if region.mean() >= 0.05:
            labels.append(name)
    return cv, sorted(labels, key=CORINE_43.index)


def _paint_water_course(cv, rng, region):
    """River water (turbid to clear) with a fringe of riparian trees on its banks."""
    if region.all():
        d, half = _river(cv, rng, rng.uniform(0.1, 0.3) * cv.h)
        cv.paint(d >= half, "broadleaf", "grass", np.float32(0.8))
        region = d < half
    cv.paint(region, "turbid", "water", np.float32(rng.uniform(0.2, 1.0)))
    bank = gaussian_filter(region.astype(np.float32), 1.5) > 0.05
    cv.paint(bank & ~region, "broadleaf", "grass", np.float32(0.8))


_BEN_STEMS = ("S2A_MSIL2A_20170613T101031", "S2B_MSIL2A_20171015T104009", "S2A_MSIL2A_20180221T114351",
              "S2B_MSIL2A_20180421T100029")


def bigearthnet_patch_name(i: int) -> str:
    stem = _BEN_STEMS[i % len(_BEN_STEMS)]
    j = i // len(_BEN_STEMS)
    return f"{stem}_{j // 100}_{j % 100}"


def _bigearthnet_sample(seed, i, size, compress):
    rng = sample_rng(seed, "bigearthnet", i)
    size = -(-size // 6) * 6
    cv, labels = _bigearthnet_scene(rng, size)
    native = sense(cv.reflectance(), rng, BIGEARTHNET_BANDS, level="L2A", native=True)
    crs, x0, y0 = _georef(rng)
    patch = bigearthnet_patch_name(i)
    out = {}
    for b, x in zip(BIGEARTHNET_BANDS, native):
        r = BANDS[b].resolution_m
        fname = f"{patch}/{patch}_B{b[1:].zfill(2) if b != 'B8A' else '8A'}.tif"
        out[fname] = tif_bytes(_u16(x), crs, Affine(r, 0, x0, 0, -r, y0), compress=compress)
    stem = patch.rsplit("_", 2)[0]
    date = stem.split("_")[2]
    meta = {
        "labels": labels,
        "coordinates": {"ulx": x0, "uly": y0, "lrx": x0 + 10 * size, "lry": y0 - 10 * size},
        "projection": crs.to_wkt(),
        "tile_source": f"{stem.replace('MSIL2A', 'MSIL1C')}_N0205_R022_T32UUP_{date}.SAFE",
        "acquisition_date": f"{date[:4]}-{date[4:6]}-{date[6:8]} {date[9:11]}:{date[11:13]}:{date[13:15]}",
    }
    out[f"{patch}/{patch}_labels_metadata.json"] = json.dumps(meta).encode()
    return out


def segmunich_scene(rng, size):
    """(Canvas, uint8 label codes) for a SegMunich-like tile."""
    cv = Canvas(size, size)
    k = int(rng.integers(2, 5))
    zones = _zones(cv, rng, k)
    codes = np.zeros((size, size), dtype=np.uint8)
    for z in range(k):
        region = zones == z
        code = _choice(rng, _SEGMUNICH_WEIGHTS)
        _SEGMUNICH_COMPOSERS[code](cv, rng, region)
        codes[region] = code
    m = cv.m1
    built = np.isin(m, [_MAT["roof"], _MAT["metal"]]) | ((m == _MAT["concrete"]) & (codes == 11))
    codes[built & np.isin(codes, [11, 12])] = 12
    codes[(m == _MAT["asphalt"])] = 0
    codes[np.isin(m, [_MAT["water"], _MAT["turbid"]])] = 5
    return cv, codes


def _segmunich_sample(seed, i, size, compress, split):
    rng = sample_rng(seed, "segmunich", i)
    cv, codes = segmunich_scene(rng, size)
    dn = sense(cv.reflectance(), rng, SEGMUNICH_BANDS, level="L2A")
    crs, x0, y0 = _georef(rng)
    tr = Affine(10, 0, x0, 0, -10, y0)
    name = f"{i}"
    return {
        f"{split}/img/{name}.tif": tif_bytes(_u16(dn), crs, tr, descriptions=SEGMUNICH_BANDS, compress=compress),
        f"{split}/label/{name}.tif": tif_bytes(codes, crs, tr, compress=compress),
    }


def oscd_scenes(rng, size):
    """Two dates of one city: (canvas1, canvas2, change mask bool)."""
    cv = Canvas(size, size)
    k = int(rng.integers(3, 6))
    zones = _zones(cv, rng, k)
    palette = [residential, residential, industrial, arable, pasture, forest, river, herbaceous]
    for z in range(k):
        palette[int(rng.integers(len(palette)))](cv, rng, zones == z)
    cv2 = Canvas(size, size)
    cv2.m1, cv2.m2, cv2.f, cv2.g = cv.m1.copy(), cv.m2.copy(), cv.f.copy(), cv.g.copy()
    # unlabelled differences: phenology of vegetation, slight gain
    veg = np.isin(cv.m1, [_MAT[m] for m in ("crop", "grass", "broadleaf", "shrub")])
    cv2.f[veg] = np.clip(cv2.f[veg] * rng.uniform(0.85, 1.1), 0, 1)
    change = np.zeros((size, size), dtype=bool)
    target = rng.uniform(0.012, 0.045)
    natural = np.isin(cv.m1, [_MAT[m] for m in ("crop", "grass", "soil", "shrub", "broadleaf", "conifer")])
    for _ in range(200):
        if change.mean() >= target:
            break
        hh, ww = rng.integers(3, max(5, size // 12), 2)
        y, x = rng.integers(0, size - hh), rng.integers(0, size - ww)
        site = np.zeros_like(change)
        site[y:y + hh, x:x + ww] = True
        if natural[site].mean() < 0.8:
            continue
        what = rng.random()
        if what < 0.5:  # new buildings on a small lot, with an access road
            cv2.paint(site, "roof" if rng.random() < 0.5 else "metal")
            cv2.paint(site & (cv.yy == y), "asphalt")
        elif what < 0.75:  # new road segment
            road = site & ((np.abs(cv.yy - (y + hh // 2)) < 1.5) | (np.abs(cv.xx - (x + ww // 2)) < 1.5))
            cv2.paint(road, "asphalt")
            site = road
        else:  # cleared field / construction site
            cv2.paint(site, "soil", "concrete", np.float32(0.8))
        change |= site & (cv2.m1 != cv.m1)
    return cv, cv2, change


def _oscd_sample(seed, i, size, compress):
    rng = sample_rng(seed, "oscd", i)
    size = -(-size // 6) * 6
    city = OSCD_CITIES[i] if i < len(OSCD_CITIES) else f"city{i:03d}"
    cv1, cv2, change = oscd_scenes(rng, size)
    crs, x0, y0 = _georef(rng)
    tile = f"{int(rng.integers(10, 60))}U{'ABCDEFGH'[int(rng.integers(8))]}Q"
    d1 = f"2016{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 28)):02d}"
    d2 = f"2018{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 28)):02d}"
    prefixes = (f"S2A_OPER_MSI_L1C_TL_SGS__{d1}T103412_A{int(rng.integers(1e6)):06d}_T{tile}",
                f"T{tile}_{d2}T104021")
    out = {}
    for date, (cv, prefix) in enumerate(zip((cv1, cv2), prefixes), 1):
        native = sense(cv.reflectance(), rng, ALL_BANDS, level="L1C", native=True)
        for b, x in zip(ALL_BANDS, native):
            r = BANDS[b].resolution_m
            suffix = "8A" if b == "B8A" else b[1:].zfill(2)
            out[f"{city}/imgs_{date}/{prefix}_B{suffix}.tif"] = tif_bytes(
                _u16(x), crs, Affine(r, 0, x0, 0, -r, y0), compress=compress)
    cm = np.where(change, 2, 1).astype(np.uint8)
    out[f"{city}/cm/{city}-cm.tif"] = tif_bytes(cm, crs, Affine(10, 0, x0, 0, -10, y0), compress=compress)
    out[f"{city}/dates.txt"] = f"date_1: {d1}\ndate_2: {d2}\n".encode()
    return out


def sen1floods11_scene(rng, size):
    """(Canvas, int16 label) with -1 no data, 0 land, 1 water; also the nodata (swath edge) mask."""
    cv = Canvas(size, size)
    k = int(rng.integers(1, 4))
    zones = _zones(cv, rng, k)
    for z in range(k):
        (arable, pasture, forest, residential, herbaceous)[int(rng.integers(5))](cv, rng, zones == z)
    d, half = _river(cv, rng, rng.uniform(4, 14))
    low = _noise(rng, size, size, size / 10) - d / (size / 3)
    flood = (d < half) | (low > rng.uniform(0.0, 1.2))
    cv.paint(flood, "turbid", "water", np.clip(0.6 + 0.3 * _noise(rng, size, size, 3), 0, 1))
    label = flood.astype(np.int16)
    if rng.random() < 0.4:
        cloud = _clouds(cv, rng, rng.uniform(0.02, 0.15))
        label[cloud] = -1
    nodata = np.zeros((size, size), dtype=bool)
    if rng.random() < 0.2:
        a = rng.uniform(-0.3, 0.3)
        nodata = cv.xx > size * rng.uniform(0.7, 0.95) + a * cv.yy
        label[nodata] = -1
    return cv, label, nodata


def _sen1floods11_sample(seed, i, size, compress):
    rng = sample_rng(seed, "sen1floods11", i)
    cv, label, nodata = sen1floods11_scene(rng, size)
    dn = sense(cv.reflectance(), rng, SEN1FLOODS11_BANDS, level="L1C")
    img = np.clip(np.rint(dn), 1, 32767).astype(np.int16)
    img[:, nodata] = 0
    crs, x0, y0 = _georef(rng)
    tr = Affine(10, 0, x0, 0, -10, y0)
    region = SEN1FLOODS11_REGIONS[i % len(SEN1FLOODS11_REGIONS)]
    sid = f"{region}_{int(rng.integers(100000, 9999999))}"
    return {
        f"S2Hand/{sid}_S2Hand.tif": tif_bytes(img, crs, tr, nodata=0, descriptions=SEN1FLOODS11_BANDS,
                                              compress=compress),
        f"LabelHand/{sid}_LabelHand.tif": tif_bytes(label, crs, tr, compress=compress),
    }


def pretrain_scene(rng, size):
    cv = Canvas(size, size)
    k = int(rng.choice([1, 1, 2, 3]))
    zones = _zones(cv, rng, k)
    pool = list(EUROSAT_COMPOSERS.values()) + [sand, rock, sparse, wetland, snow]
    w = np.array([1.0] * len(EUROSAT_COMPOSERS) + [0.2, 0.2, 0.3, 0.2, 0.1])
    for z in range(k):
        pool[int(rng.choice(len(pool), p=w / w.sum()))](cv, rng, zones == z)
    if rng.random() < 0.12:
        _clouds(cv, rng, rng.uniform(0.05, 0.6))
    return cv


def _pretrain_sample(seed, i, size, compress):
    rng = sample_rng(seed, "pretrain", i)
    cv = pretrain_scene(rng, size)
    dn = sense(cv.reflectance(), rng, PRETRAIN_BANDS, level="L1C")
    crs, x0, y0 = _georef(rng)
    return {f"{i}.tif": tif_bytes(_u16(dn), crs, Affine(10, 0, x0, 0, -10, y0),
                                  descriptions=PRETRAIN_BANDS, compress=compress)}


# --------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------
_DEFAULT_SIZE = {"eurosat": 64, "bigearthnet": 120, "segmunich": 128, "oscd": 240, "sen1floods11": 512,
                 "pretrain": 128}
_DEFAULT_N = {"eurosat": 100, "bigearthnet": 50, "segmunich": 40, "oscd": 4, "sen1floods11": 10,
              "pretrain": 200}
_DEFAULT_COMPRESS = {"eurosat": None, "bigearthnet": None, "segmunich": "deflate", "oscd": None,
                     "sen1floods11": "deflate", "pretrain": None}


def _split_of(seed, kind, i, fractions=(0.6, 0.2, 0.2)):
    u = (zlib.crc32(f"{seed}/{kind}/{i}".encode()) % 10000) / 10000.0
    return "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"


@dataclass(frozen=True)
class _Job:
    kind: str
    seed: int
    size: int
    compress: str | None


def _render(job: _Job, i: int) -> dict[str, bytes]:
    if job.kind == "segmunich":
        split = "test" if _split_of(job.seed, "segmunich", i, (0.75, 0.0, 0.25)) == "test" else "train"
        return _segmunich_sample(job.seed, i, job.size, job.compress, split)
    fn = {"eurosat": _eurosat_sample, "bigearthnet": _bigearthnet_sample, "oscd": _oscd_sample,
          "sen1floods11": _sen1floods11_sample, "pretrain": _pretrain_sample}[job.kind]
    return fn(job.seed, i, job.size, job.compress)


def _render_write(job: _Job, root: str, i: int) -> list[str]:
    files = _render(job, i)
    for rel, data in files.items():
        atomic_write_bytes(Path(root) / rel, data)
    return list(files)


def _render_chunk(job: _Job, root: str, lo: int, hi: int) -> list[list[str]]:
    return [_render_write(job, root, i) for i in range(lo, hi)]


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = len(data), 0, 0o644, 0, 0, "", ""
            tf.addfile(ti, io.BytesIO(data))
    atomic_write_bytes(path, buf.getvalue())


def _tar_chunk(job: _Job, root: str, k: int, lo: int, hi: int) -> str:
    members = []
    for i in range(lo, hi):
        members.extend(_render(job, i).items())
    path = Path(root) / f"pretrain-{k:05d}.tar"
    _write_tar(path, members)
    return path.name


def _run_chunks(fn, args: list[tuple], sizes: list[int], workers: int, bar) -> list:
    """fn(*a) for each a in args, in order, in a process pool when asked; the bar advances by each chunk's size
    as it finishes (the main process draws it, so workers never touch the terminal)."""
    out = []
    if workers > 1 and len(args) > 1:
        with ProcessPoolExecutor(workers) as ex:
            for result, k in zip(ex.map(fn, *zip(*args)), sizes):
                out.append(result)
                bar.update(k)
    else:
        for a, k in zip(args, sizes):
            out.append(fn(*a))
            bar.update(k)
    return out


def generate(kind: str, root, n: int | None = None, seed: int = 0, size: int | None = None, *,
             workers: int = 1, compress: str | None | bool = True, tar_size: int | None = None,
             progress: bool | None = None) -> dict:
    """Write `n` synthetic samples of one dataset layout under `root`; returns a summary dict.

    n counts images (eurosat: spread round-robin over the 10 classes; bigearthnet: patches; segmunich:
    tiles; oscd: cities; sen1floods11: chips; pretrain: images). size is the 10 m side in pixels
    (defaults: eurosat 64, bigearthnet 120, segmunich 128, oscd 240, sen1floods11 512, pretrain 128;
    bigearthnet/oscd round it up to a multiple of 6 so the 60 m grid is whole). compress: True = the
    layout's default (uncompressed where the real data set is), None/False = none, or a GDAL name.
    tar_size (pretrain only): pack that many images per ``pretrain-<k>.tar``. progress: a samples/s bar on
    stderr (None: only when stderr is a terminal).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {kind!r}; expected one of {', '.join(KINDS)}")
    n = _DEFAULT_N[kind] if n is None else int(n)
    size = _DEFAULT_SIZE[kind] if size is None else int(size)
    if n < 0 or size < 8:
        raise ValueError(f"n must be >= 0 and size >= 8, got n={n}, size={size}")
    if tar_size is not None and kind != "pretrain":
        raise ValueError("tar_size is only supported for kind='pretrain'")
    comp = _DEFAULT_COMPRESS[kind] if compress is True else (compress or None)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    job = _Job(kind, int(seed), size, comp)
    bar = tqdm(total=n, desc=f"synthetic {kind}", unit="sample", leave=False,
               disable=None if progress is None else not progress)
    with bar:
        if tar_size:
            chunks = [(k, lo, min(n, lo + tar_size)) for k, lo in enumerate(range(0, n, tar_size))]
            args = [(job, str(root), *c) for c in chunks]
            sizes = [hi - lo for _, lo, hi in chunks]
            files = _run_chunks(_tar_chunk, args, sizes, workers, bar)
        else:
            step = max(1, min(64, -(-n // max(1, workers * 4))))
            bounds = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
            parts = _run_chunks(_render_chunk, [(job, str(root), lo, hi) for lo, hi in bounds],
                                [hi - lo for lo, hi in bounds], workers, bar)
            files = [f for part in parts for sample in part for f in sample]
    _write_splits(kind, root, n, seed, size)
    log.info("synthetic %s: %d samples (%d files) of %d px under %s", kind, n, len(files), size, root)
    return {"kind": kind, "root": str(root), "n": n, "size": size, "seed": seed, "files": len(files)}


def _write_splits(kind, root: Path, n, seed, size):
    if kind == "eurosat":
        lists = {"train": [], "val": [], "test": []}
        for i in range(n):
            cls = EUROSAT_CLASSES[i % len(EUROSAT_CLASSES)]
            lists[_split_of(seed, kind, i)].append(f"{cls}_{i // len(EUROSAT_CLASSES) + 1}.tif")
        for s, names in lists.items():
            atomic_write_text(root / f"eurosat-{s}.txt", "".join(f"{x}\n" for x in names))
    elif kind == "bigearthnet":
        lists = {"train": [], "val": [], "test": []}
        for i in range(n):
            lists[_split_of(seed, kind, i)].append(bigearthnet_patch_name(i))
        for s, names in lists.items():
            atomic_write_text(root / f"{s}.csv", "".join(f"{x}\n" for x in names))
    elif kind == "segmunich":
        lists = {"train": [], "test": []}
        for i in range(n):
            s = "test" if _split_of(seed, kind, i, (0.75, 0.0, 0.25)) == "test" else "train"
            lists[s].append(str(i))
        for s, names in lists.items():
            atomic_write_text(root / "dataset" / f"{s}.txt", "".join(f"{x}\n" for x in names))
    elif kind == "oscd":
        cities = [OSCD_CITIES[i] if i < len(OSCD_CITIES) else f"city{i:03d}" for i in range(n)]
        n_test = max(1, n // 3) if n > 1 else 0
        train, test = cities[: n - n_test], cities[n - n_test:]
        atomic_write_text(root / "train.txt", ",".join(train) + "\n")
        atomic_write_text(root / "test.txt", ",".join(test) + "\n")


SCALES = {
    "tiny": {"eurosat": (100, 64), "bigearthnet": (40, 120), "segmunich": (24, 128), "oscd": (3, 120),
             "sen1floods11": (6, 128), "pretrain": (120, 128)},
    "demo": {"eurosat": (300, 64), "bigearthnet": (200, 120), "segmunich": (64, 128), "oscd": (6, 128),
             "sen1floods11": (6, 128), "pretrain": (300, 64)},
    "small": {"eurosat": (1000, 64), "bigearthnet": (400, 120), "segmunich": (200, 128), "oscd": (6, 240),
              "sen1floods11": (40, 256), "pretrain": (2000, 128)},
}


def generate_demo_corpus(root, seed: int = 0, scale: str = "tiny", workers: int = 1,
                         progress: bool | None = None) -> dict[str, dict]:
    """Write every layout into ``<root>/<kind>/`` at a named scale ('tiny' for tests, 'demo' for `make demo`,
    'small' for a longer CPU run)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    return {kind: generate(kind, Path(root) / kind, n=n, seed=seed, size=size, workers=workers, progress=progress)
            for kind, (n, size) in SCALES[scale].items()}
