"""Every loader on the genuine Sentinel-2 samples in ../shared/data/real (skipped when absent)."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.data import BadSample, load_dataset
from spectralgpt.data.sources.bigearthnet import LABELS_19

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def _need(sub):
    if not (REAL / sub).is_dir():
        pytest.skip(f"real samples not available: {REAL / sub}")
    return REAL / sub


def test_eurosat_b8a_lands_at_index_8_and_labels_are_alphabetical():
    ds = load_dataset("eurosat", _need("eurosat"))
    assert len(ds) == 30 and ds.ids == sorted(ds.ids)
    s = ds[ds.ids.index("Forest_2")]
    assert s.bands == PRETRAIN_BANDS and s.image.shape == (12, 64, 64) and s.image.dtype == np.uint16
    with rasterio.open(s.source) as f:
        raw = f.read()
        crs, transform = f.crs, f.transform
    # file order B1..B12 then B8A: raw index 12 is B8A, raw 8 is B9, raw 11 is B12, raw 10 is B11
    assert np.array_equal(s.image[8], raw[12])
    assert np.array_equal(s.image[9], raw[8])
    assert np.array_equal(s.image[10], raw[10]) and np.array_equal(s.image[11], raw[11])
    assert not np.array_equal(s.image[8], raw[8])
    assert s.label == 1 and s.crs == crs and s.transform == transform
    labels = {x.id.rsplit("_", 1)[0]: x.label for x in ds}
    assert labels["AnnualCrop"] == 0 and labels["SeaLake"] == 9 and labels["River"] == 8


def test_eurosat_hash_split_is_a_partition():
    root = _need("eurosat")
    parts = [load_dataset("eurosat", root, split=s).ids for s in ("train", "val", "test")]
    assert sorted(sum(parts, [])) == load_dataset("eurosat", root).ids
    assert parts[0] == load_dataset("eurosat", root, split="train").ids  # deterministic


def test_bigearthnet_shapes_grid_and_19_class_labels():
    root = _need("bigearthnet")
    ds = load_dataset("bigearthnet", root)
    assert len(ds) == 5
    for s in ds:
        assert s.image.shape == (12, 120, 120) and s.image.dtype == np.uint16
        with rasterio.open(root / s.id / f"{s.id}_B02.tif") as f:
            assert s.crs == f.crs and s.transform == f.transform
            assert np.array_equal(s.image[1], f.read(1))  # B2 is the grid: read untouched
        with rasterio.open(root / s.id / f"{s.id}_B01.tif") as f:
            b1 = f.read(1).astype(float)
        # B1 (20x20) upsampled x6: block means stay close to the 60 m values
        up = s.image[0].astype(float).reshape(20, 6, 20, 6).mean(axis=(1, 3))
        assert np.abs(up - b1).mean() < 0.15 * b1.mean()
        names = json.loads((root / s.id / f"{s.id}_labels_metadata.json").read_text())["labels"]
        assert s.label.dtype == np.float32 and s.label.shape == (19,)
        assert 1 <= s.label.sum() <= len(names)
    s = ds[ds.ids.index("S2A_MSIL2A_20171221T112501_56_35")]
    on = {LABELS_19[i] for i in np.flatnonzero(s.label)}
    # "Transitional woodland/shrub" (43-class spelling) must map to the 19-class "Transitional woodland, shrub"
    assert on == {
        "Complex cultivation patterns",
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
        "Broad-leaved forest",
        "Transitional woodland, shrub",
    }
    s = ds[ds.ids.index("S2A_MSIL2A_20170613T101031_87_48")]
    assert {LABELS_19[i] for i in np.flatnonzero(s.label)} == {
        "Arable land", "Land principally occupied by agriculture, with significant areas of natural vegetation"}
    s = ds[ds.ids.index("S2A_MSIL2A_20180510T94033_19_86")]
    assert {LABELS_19[i] for i in np.flatnonzero(s.label)} == {"Coniferous forest", "Inland wetlands"}


def test_oscd_bercy_grid_mask_and_second_date():
    root = _need("oscd")
    ds = load_dataset("oscd", root)
    assert ds.ids == ["bercy"]
    s = ds[0]
    b02 = sorted((root / "bercy" / "imgs_1").glob("*_B02.tif"))[0]
    with rasterio.open(b02) as f:
        assert s.image.shape == (12, f.height, f.width) == (12, 395, 360)
        assert s.crs == f.crs and s.transform == f.transform and s.crs.to_epsg() == 4326
        assert np.array_equal(s.image[1], f.read(1))
    b02_2 = sorted((root / "bercy" / "imgs_2").glob("*_B02.tif"))[0]
    with rasterio.open(b02_2) as f:
        assert s.image2.shape == s.image.shape and np.array_equal(s.image2[1], f.read(1))
    assert s.label.dtype == np.uint8 and set(np.unique(s.label)) == {0, 1}
    assert int(s.label.sum()) == 1046 and s.label.size == 142200
    assert s.split == "train"
    train = load_dataset("oscd", root, split="train")
    assert len(train) == 14 and "bercy" in train.ids  # the list names 14 cities; only bercy is here
    with pytest.raises(BadSample) as e:
        train[train.ids.index("paris")]
    assert e.value.reason == "missing_file" and "paris" in str(e.value)
    assert load_dataset("oscd", root, split="test").ids == ["brasilia", "chongqing", "dubai", "lasvegas",
                                                           "milano", "montpellier", "norcia", "rio", "saclay_w",
                                                           "valencia"]


def test_sen1floods11_band_order_nodata_and_ignore_label():
    root = _need("sen1floods11")
    ds = load_dataset("sen1floods11", root)
    assert ds.ids == ["Spain_7370579"]
    s = ds[0]
    with rasterio.open(s.source) as f:
        raw = f.read()
        assert s.crs == f.crs and s.transform == f.transform
    assert s.image.shape == (12, 512, 512) and s.image.dtype == np.int16
    assert np.array_equal(s.image[8], raw[8])  # B8A at index 8 in both
    assert np.array_equal(s.image[9], raw[9]) and np.array_equal(s.image[10], raw[11])  # B9, B11 (B10 dropped)
    assert s.label.dtype == np.int64 and set(np.unique(s.label)) <= {-1, 0, 1} and (s.label == -1).any()
    assert s.meta["nodata"] == 0


def test_real_datasets_pickle_and_read_the_same_after():
    ds = load_dataset("bigearthnet", _need("bigearthnet"))
    ds2 = pickle.loads(pickle.dumps(ds))
    assert ds2.ids == ds.ids and np.array_equal(ds2[3].image, ds[3].image)
