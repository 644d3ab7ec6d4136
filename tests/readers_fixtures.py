"""Tiny GeoTIFF fixtures for the reader tests: real files written with rasterio in the datasets' layouts.

(The full synthetic corpus generator lives in spectralgpt.data.synthetic; these helpers only write the few
small files each test needs.)
"""

from __future__ import annotations

import json
import tarfile
import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors

from rasterio.transform import Affine

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"

UTM = "EPSG:32633"
EUROSAT_ORDER = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B8A")
ESA_ORDER = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
BEN_FILES = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12", "B8A")
RES = {"B1": 60, "B9": 60, "B10": 60, "B2": 10, "B3": 10, "B4": 10, "B8": 10}  # others 20 m


def from_origin(west, north, xres, yres):
    """Like rasterio.transform.from_origin, without its affine deprecation warning."""
    return Affine(xres, 0.0, west, 0.0, -yres, north)


def band_value(name: str) -> int:
    """A distinctive constant per band name, so tests can tell bands apart: B1 -> 100, B8A -> 850, B12 -> 1200."""
    return 850 if name == "B8A" else int(name[1:]) * 100


def write_tif(path, array, *, crs=UTM, transform=None, descriptions=None, nodata=None, dtype=None):
    """Write (C,H,W) or (H,W) `array` as a GeoTIFF; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[None]
    dtype = dtype or a.dtype
    prof = dict(driver="GTiff", height=a.shape[1], width=a.shape[2], count=a.shape[0], dtype=dtype)
    if crs is not None:
        prof.update(crs=crs, transform=transform or from_origin(500000, 5000000, 10, 10))
    if nodata is not None:
        prof["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        dst = rasterio.open(path, "w", **prof)
    with dst:
        dst.write(a.astype(dtype))
        for i, d in enumerate(descriptions or ()):
            dst.set_band_description(i + 1, d)
    return path


def stack(order, size, dtype="uint16", seed=0):
    """(C, size, size) image whose band k is band_value(order[k]) plus small noise (never constant)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 20, (len(order), size, size))
    return (np.array([band_value(b) for b in order])[:, None, None] + noise).astype(dtype)


def make_eurosat(root, per_class=("Forest", "River"), n=2, size=64):
    root = Path(root)
    paths = []
    for c in per_class:
        for k in range(1, n + 1):
            paths.append(write_tif(root / c / f"{c}_{k}.tif", stack(EUROSAT_ORDER, size, seed=k)))
    return paths


def make_ben_patch(root, name, labels=("Pastures",), size=120, skip=(), origin=(600000, 5800000)):
    """A BigEarthNet patch folder: 12 band files at native resolution (band_value constants) + labels json."""
    d = Path(root) / name
    for f in BEN_FILES:
        b = "B8A" if f == "B8A" else f"B{int(f[1:])}"
        if f in skip:
            continue
        res = RES.get(b, 20)
        n = size * 10 // res
        a = np.full((n, n), band_value(b), np.uint16)
        a[0, 0] += 7  # not constant
        write_tif(d / f"{name}_{f}.tif", a, transform=from_origin(*origin, res, res))
    (d / f"{name}_labels_metadata.json").write_text(json.dumps({"labels": list(labels)}))
    return d


def _oscd_date(folder, prefix, plus, size):
    """13 band files of one OSCD date at native resolution, value band_value(b) + plus (pixel [0, 0] + 3)."""
    for b in ESA_ORDER:
        res = RES.get(b, 20)
        n = size * 10 // res
        a = np.full((n, n), band_value(b) + plus, np.uint16)
        a[0, 0] += 3
        f = "B8A" if b == "B8A" else f"B{int(b[1:]):02d}"
        write_tif(Path(folder) / f"{prefix}{f}.tif", a, crs="EPSG:4326",
                  transform=from_origin(2.0, 48.0, 1e-4 * res / 10, 1e-4 * res / 10))


def _oscd_mask(cm_dir, city, size, cm, changed):
    mask = np.zeros((size, size), np.uint8)
    for r, c in changed:
        mask[r, c] = 1
    if cm == "tif":
        write_tif(Path(cm_dir) / f"{city}-cm.tif", mask + 1, crs=None)  # 1 = no change, 2 = change
    elif cm == "png":
        Path(cm_dir).mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(Path(cm_dir) / "cm.png", "w", driver="PNG", height=size, width=size, count=1,
                               dtype="uint8") as dst:
                dst.write(mask[None] * 255)


def make_oscd_city(root, city, size=60, cm="tif", changed=((1, 2), (3, 4))):
    """An OSCD city: imgs_1 / imgs_2 with 13 band files each (different prefixes) and a change mask."""
    d = Path(root) / city
    _oscd_date(d / "imgs_1", f"S2A_{city}_20160101_", 0, size)
    _oscd_date(d / "imgs_2", f"T31_{city}_20170101_", 1, size)
    _oscd_mask(d / "cm", city, size, cm, changed)
    return d


OSCD_IMAGES = "Onera Satellite Change Detection dataset - Images"
OSCD_LABELS = {"train": "Onera Satellite Change Detection dataset - Train Labels",
               "test": "Onera Satellite Change Detection dataset - Test Labels"}


def make_oscd_download(root, splits=None, size=60, lists=True):
    """OSCD as its three archives unpack: {split: [city, ...]}; raw dates band_value (+1 for date 2), the
    co-registered ``imgs_*_rect`` copies (files named ``B01.tif``) band_value + 10 (+11), dates.txt, train.txt /
    test.txt in the Images folder, each city's mask (tif and png) in its split's Labels folder."""
    root = Path(root)
    splits = splits or {"train": ["alpha", "beta"], "test": ["gamma"]}
    images = root / OSCD_IMAGES
    for split, cities in splits.items():
        for k, city in enumerate(cities):
            d = images / city
            _oscd_date(d / "imgs_1", f"S2A_OPER_MSI_L1C_TL_{city}_", 0, size)
            _oscd_date(d / "imgs_2", f"T31UDQ_{city}_", 1, size)
            _oscd_date(d / "imgs_1_rect", "", 10, size)
            _oscd_date(d / "imgs_2_rect", "", 11, size)
            (d / "dates.txt").write_text("date_1: 20161130\ndate_2: 20170829\n")
            changed = tuple((i, i) for i in range(k + 1))
            for cm in ("tif", "png"):
                _oscd_mask(root / OSCD_LABELS[split] / city / "cm", city, size, cm, changed)
        if lists:
            (images / f"{split}.txt").write_text(",".join(cities))
    return root


def make_segmunich(root, names=("t1", "t2"), split="train", size=128, descriptions=False, label_value=21):
    root = Path(root)
    order = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
    for k, n in enumerate(names):
        write_tif(root / split / "img" / f"{n}.tif", stack(order, size, seed=k),
                  descriptions=order if descriptions else None)
        lab = np.zeros((size, size), np.uint8)
        lab[:10] = label_value
        lab[10:20] = 255
        write_tif(root / split / "label" / f"{n}.tif", lab)
    ds = root / "dataset"
    ds.mkdir(parents=True, exist_ok=True)
    with open(ds / f"{split}.txt", "a") as f:
        f.write("".join(f"{n}\n" for n in names))
    return root


FMOW_HEADER = ",category,location_id,image_id,timestamp,polygon,image_path\n"


def make_fmow(root, rows, split="train", size=32):
    """rows: (category, location_id, image_id, timestamp); writes the csv and 13-band ESA-order tifs."""
    root = Path(root)
    lines = [FMOW_HEADER]
    for k, (cat, loc, img, ts) in enumerate(rows):
        rel = f"fmow-sentinel/{split}/{cat}/{cat}_{loc}/{cat}_{loc}_{img}.tif"
        write_tif(root / rel, stack(ESA_ORDER, size, seed=k))
        lines.append(f'{k},{cat},{loc},{img},{ts},"POLYGON ((0 0, 1 0, 1 1, 0 0))",{rel}\n')
    (root / f"{split}.csv").write_text("".join(lines))
    return root


def make_tar(tar_path, files: dict):
    """A tar archive of {member name: local file}."""
    with tarfile.open(tar_path, "w") as tf:
        for member, f in files.items():
            tf.add(f, arcname=member)
    return tar_path
