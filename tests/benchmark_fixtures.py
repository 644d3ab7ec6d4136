"""Tiny fixtures in the benchmark datasets' real layouts: GEO-Bench task folders (per-sample HDF5 written with
h5py, the per-sample "pickle" attribute GEO-Bench writes, partition and label JSON) and UC Merced (RGB TIFFs).

The pickled attributes are made as GEO-Bench makes them (`pickle.dumps` of a dict holding its band-info
objects), with stand-ins for its classes that pickle under GEO-Bench's own module and class names
(`geobench.dataset.Sentinel2`, ...), so the files carry the same globals as downloaded ones without the
geobench package installed.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import Affine

from readers_fixtures import write_tif

#: GEO-Bench's Sentinel-2 table: (descriptor, alt names, resolution m, wavelength um), in its order
S2_13 = (
    ("01 - Coastal aerosol", ("1", "01"), 60, 0.443), ("02 - Blue", ("2", "02", "blue"), 10, 0.49),
    ("03 - Green", ("3", "03", "green"), 10, 0.56), ("04 - Red", ("4", "04", "red"), 10, 0.665),
    ("05 - Vegetation Red Edge", ("5", "05"), 20, 0.705), ("06 - Vegetation Red Edge", ("6", "06"), 20, 0.74),
    ("07 - Vegetation Red Edge", ("7", "07"), 20, 0.783), ("08 - NIR", ("8", "08", "NIR"), 10, 0.842),
    ("08A - Vegetation Red Edge", ("8A", "08A"), 20, 0.865), ("09 - Water vapour", ("9", "09"), 60, 0.945),
    ("10 - SWIR - Cirrus", ("10",), 60, 1.375), ("11 - SWIR", ("11",), 20, 1.61), ("12 - SWIR", ("12",), 20, 2.19),
)
S2_IDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
OLI = (("01 - Coastal aerosol", 30, 0.443), ("02 - Blue", 15, 0.482), ("03 - Green", 15, 0.5614),
       ("04 - Red", 15, 0.6546), ("05 - NIR", 30, 0.8647), ("06 - SWIR1", 30, 1.6089), ("07 - SWIR2", 30, 2.2007))
RGB = (("Red", 0.665), ("Green", 0.56), ("Blue", 0.49))


def geobench_value(descriptor: str) -> int:
    """A distinctive constant per band descriptor: '04 - Red' -> 400, '08A - ...' -> 850, 'Red' -> 1001."""
    head = descriptor.split(" ")[0]
    if head == "08A":
        return 850
    if head.isdigit():
        return int(head) * 100
    return {"Red": 1001, "Green": 1002, "Blue": 1003}.get(descriptor, 7)


@contextlib.contextmanager
def geobench_classes():
    """Stand-ins of GEO-Bench's band-info classes under its real module and class names, for pickling only."""
    mod = types.ModuleType("geobench.dataset")

    def make(name, base=object):
        cls = type(name, (base,), {"__module__": "geobench.dataset"})
        setattr(mod, name, cls)
        return cls

    band_info = make("BandInfo")
    spectral = make("SpectralBand", band_info)
    make("Sentinel2", spectral)
    make("Landsat8", spectral)
    mask = make("Mask", band_info)
    make("CloudProbability", mask)
    make("SegmentationClasses", band_info)
    pkg = types.ModuleType("geobench")
    pkg.dataset = mod
    saved = {k: sys.modules.get(k) for k in ("geobench", "geobench.dataset")}
    sys.modules.update({"geobench": pkg, "geobench.dataset": mod})
    try:
        yield mod
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _info(mod, cls: str, **fields):
    obj = getattr(mod, cls)()
    obj.__dict__.update(fields)
    return obj


def band_infos(mod, sensor: str):
    """[(descriptor, band-info object)] of one GEO-Bench sensor table."""
    if sensor == "s2":
        return [(d, _info(mod, "Sentinel2", name=d, alt_names=a, spatial_resolution=r, wavelength=w))
                for d, a, r, w in S2_13]
    if sensor == "oli":
        return [(d, _info(mod, "Landsat8", name=d, alt_names=(), spatial_resolution=r, wavelength=w))
                for d, r, w in OLI]
    return [(d, _info(mod, "SpectralBand", name=d, alt_names=(d.lower(),), spatial_resolution=0.1, wavelength=w))
            for d, w in RGB]


def write_geobench_sample(path, bands, *, label=None, mask=None, size=16, date=None, seed=0, dtype="int16",
                          transform=None, crs=None, extra_attrs=None, attrs_override=None):
    """One GEO-Bench sample file: a dataset per band (`bands`: [(descriptor, band_info)]), descriptors dated
    with `date` (a datetime.date) when given, a "label" dataset for `mask`, the pickled attributes (with `label`
    for classification / multi-label). `attrs_override`: a raw string stored as the "pickle" attribute instead."""
    import h5py

    rng = np.random.default_rng(seed)
    attr: dict = {}
    order = []
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fp:
        for descriptor, info in bands:
            key = descriptor if date is None else f"{descriptor}_{date.strftime('%Y-%m-%d')}"
            data = (geobench_value(descriptor) + rng.integers(0, 20, (size, size))).astype(dtype)
            fp.create_dataset(key, data=data)
            attr[key] = dict(date=date, date_id=date, spatial_resolution=10.0, band_info=info, meta_info=None,
                             transform=transform, crs=crs)
            order.append(key)
        if mask is not None:
            fp.create_dataset("label", data=np.asarray(mask))
            order.append("label")
            attr["label"] = dict(date=None, date_id=None, spatial_resolution=10.0, band_info=None, meta_info=None,
                                 transform=None, crs=None)
        elif label is not None:
            attr["label"] = label
        attr["bands_order"] = order
        attr.update(extra_attrs or {})
        fp.attrs["pickle"] = attrs_override if attrs_override is not None else str(pickle.dumps(attr))
    return path


def make_geobench(root, dataset="m-eurosat", splits=None, *, sensor="s2", task="classification", n_classes=10,
                  size=16, dated=False, skip_bands=(), label_tables=True, seed=0, georef=False, cloud_band=False):
    """A GEO-Bench task folder `root/dataset`: samples per split (`splits`: {split: [names]}, GEO-Bench's split
    names train / valid / test), default_partition.json, the label tables GEO-Bench ships (`label_tables`),
    band_stats.json. Labels are deterministic per sample (returned as {name: label})."""
    import h5py  # noqa: F401  (fail early when h5py is missing)

    root = Path(root) / dataset
    splits = splits or {"train": ["s0", "s1", "s2"], "valid": ["s3"], "test": ["s4"]}
    labels, stats = {}, {}
    transform = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0) if georef else None
    crs = CRS.from_epsg(32633) if georef else None
    date = datetime.date(2019, 11, 5) if dated else None
    with geobench_classes() as mod:
        bands = [(d, i) for d, i in band_infos(mod, sensor) if d not in skip_bands]
        if cloud_band:
            bands.append(("Cloud Probability", _info(mod, "CloudProbability", name="Cloud Probability",
                                                     alt_names=("CPL", "CLD"), spatial_resolution=10)))
        k = 0
        for names in splits.values():
            for name in names:
                kw = {}
                if task == "classification":
                    labels[name] = kw["label"] = k % n_classes
                elif task == "multilabel":
                    y = np.zeros(n_classes, np.int64)
                    y[[k % n_classes, (3 * k + 1) % n_classes]] = 1
                    labels[name] = y
                    kw["label"] = y
                else:
                    m = (np.arange(size * size).reshape(size, size) + k) % n_classes
                    labels[name] = kw["mask"] = m.astype(np.int16)
                    stats[name] = (np.bincount(m.ravel(), minlength=n_classes) / m.size).tolist()
                write_geobench_sample(root / f"{name}.hdf5", bands, size=size, date=date, seed=seed + k,
                                      transform=transform, crs=crs, **kw)
                k += 1
    (root / "default_partition.json").write_text(json.dumps(splits, indent=2))
    if label_tables and task == "classification":
        table: dict = {}
        for name, y in labels.items():
            table.setdefault(str(y), []).append(name)
        (root / "label_map.json").write_text(json.dumps(table, indent=4, sort_keys=True))
    if label_tables and task == "multilabel":
        (root / "label_stats.json").write_text(json.dumps({n: y.tolist() for n, y in labels.items()}, indent=4))
    if label_tables and task == "segmentation":
        (root / "label_stats.json").write_text(json.dumps(stats, indent=4, sort_keys=True))
    band_stats = {d: {"mean": float(geobench_value(d) + 9.5), "std": 5.77, "min": float(geobench_value(d)),
                      "max": float(geobench_value(d) + 19)} for d, _ in bands}
    (root / "band_stats.json").write_text(json.dumps(band_stats, indent=4, sort_keys=True))
    (root / "task_specs.pkl").write_bytes(b"\x80\x04never unpickled")
    return root, labels


def make_ucmerced(root, classes=("agricultural", "airplane", "river"), n=3, size=16, split_lists=False):
    """UCMerced_LandUse/Images/<class>/<class>NN.tif, 3-band uint8 RGB without georeference; pixel value encodes
    the band (red 10x, green 20x, blue 30x) plus the image number. Optional torchgeo split lists."""
    root = Path(root)
    images = root / "UCMerced_LandUse" / "Images"
    names = []
    for c in classes:
        for k in range(n):
            a = np.stack([np.full((size, size), 10 * (b + 1) + k, np.uint8) for b in range(3)])
            a[:, 0, 0] += 1  # never constant
            write_tif(images / c / f"{c}{k:02d}.tif", a, crs=None)
            names.append(f"{c}{k:02d}.tif")
    if split_lists:
        (root / "uc_merced-train.txt").write_text("\n".join(names[:-2]) + "\n")
        (root / "uc_merced-val.txt").write_text(names[-2] + "\n")
        (root / "uc_merced-test.txt").write_text(names[-1] + "\n")
    return root, names
