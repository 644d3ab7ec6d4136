"""Loaders on small GeoTIFFs written in each dataset's layout (layouts without real samples, split files,
tars, pickling and parallel reads)."""

import os
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readers_fixtures import (  # noqa: E402
    ESA_ORDER, band_value, make_ben_patch, make_eurosat, make_fmow, make_oscd_city, make_segmunich, make_tar,
    stack, write_tif,
)

from spectralgpt.bands import PRETRAIN_BANDS  # noqa: E402
from spectralgpt.data import BadSample, load_dataset  # noqa: E402


def _band_of(a):
    return int(a.min()) - int(a.min()) % 50


def test_eurosat_split_list_file(tmp_path):
    make_eurosat(tmp_path, ("Forest", "River", "SeaLake"), n=2)
    (tmp_path / "eurosat-train.txt").write_text("River_2.tif\nForest_1.jpg\n")
    ds = load_dataset("eurosat", tmp_path, split="train")
    assert ds.ids == ["Forest_1", "River_2"] and [s.label for s in ds] == [1, 8]
    assert [_band_of(a) for a in ds[0].image] == [band_value(b) for b in PRETRAIN_BANDS]
    # no val list: hash split over every file, a deterministic partition
    parts = [set(load_dataset("eurosat", tmp_path, split=s).ids) for s in ("train", "val", "test")]
    assert len(load_dataset("eurosat", tmp_path, split="val")) == len(parts[1])
    assert len(load_dataset("eurosat", tmp_path)) == 6


def test_bigearthnet_csv_split_missing_b10_and_43_classes(tmp_path):
    make_ben_patch(tmp_path, "P1", labels=("Sea and ocean", "Airports"))
    make_ben_patch(tmp_path, "P2", labels=("Rice fields",))
    (tmp_path / "test.csv").write_text("P2\n")
    ds = load_dataset("bigearthnet", tmp_path, split="test")
    assert ds.ids == ["P2"]
    s = ds[0]
    assert s.image.shape == (12, 120, 120) and s.label.argmax() == 2  # Arable land
    s = load_dataset("bigearthnet", tmp_path)[0]
    assert s.label.sum() == 1 and s.label[18] == 1  # Marine waters; Airports dropped
    assert [int(np.median(a)) for a in s.image] == [band_value(b) for b in PRETRAIN_BANDS]
    s43 = load_dataset("bigearthnet", tmp_path, nomenclature=43)[0]
    assert s43.label.shape == (43,) and s43.label.sum() == 2
    with pytest.raises(BadSample) as e:
        load_dataset("bigearthnet", tmp_path, bands=("B2", "B10"))[0]
    assert e.value.reason == "missing_bands" and "B10" in str(e.value)


def test_oscd_png_mask_and_lists(tmp_path):
    make_oscd_city(tmp_path, "alpha", cm="png", changed=((0, 0), (5, 5), (6, 6)))
    make_oscd_city(tmp_path, "beta", cm="tif")
    (tmp_path / "train.txt").write_text("alpha")
    (tmp_path / "test.txt").write_text("beta\n")
    tr, te = load_dataset("oscd", tmp_path, split="train"), load_dataset("oscd", tmp_path, split="test")
    assert tr.ids == ["alpha"] and te.ids == ["beta"]
    a, b = tr[0], te[0]
    assert a.label.sum() == 3 and b.label.sum() == 2 and a.label.dtype == np.uint8
    assert a.image.shape == a.image2.shape == (12, 60, 60)
    assert [int(np.median(x)) for x in a.image] == [band_value(x) for x in PRETRAIN_BANDS]
    assert [int(np.median(x)) for x in a.image2] == [band_value(x) + 1 for x in PRETRAIN_BANDS]
    assert a.crs.to_epsg() == 4326 and a.transform.a == pytest.approx(1e-4)


def test_sen1floods11_sibling_labelhand_and_official_split(tmp_path):
    base = tmp_path / "v1.1" / "data" / "flood_events" / "HandLabeled"
    for k, sid in enumerate(("Ghana_1", "India_2")):
        write_tif(base / "S2Hand" / f"{sid}_S2Hand.tif", stack(ESA_ORDER, 16, "int16", k), nodata=0,
                  crs="EPSG:4326")
        lab = np.zeros((16, 16), np.int16)
        lab[0] = -1
        lab[1] = 1
        write_tif(base / "LabelHand" / f"{sid}_LabelHand.tif", lab, crs="EPSG:4326")
    sp = tmp_path / "splits" / "flood_handlabeled"
    sp.mkdir(parents=True)
    (sp / "flood_valid_data.csv").write_text("India_2_S1Hand.tif,India_2_LabelHand.tif\n")
    ds = load_dataset("sen1floods11", tmp_path, split="val")
    assert ds.ids == ["India_2"]
    s = ds[0]
    assert s.image.dtype == np.int16 and [_band_of(a) for a in s.image] == [band_value(b) for b in PRETRAIN_BANDS]
    assert s.label.dtype == np.int64 and set(np.unique(s.label)) == {-1, 0, 1}
    assert load_dataset("sen1floods11", tmp_path).ids == ["Ghana_1", "India_2"]


def test_segmunich_default_order_remap_and_fill_missing(tmp_path):
    make_segmunich(tmp_path, ("a", "b"), "train", label_value=32)
    make_segmunich(tmp_path, ("c",), "test", label_value=13)
    ten = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
    ds = load_dataset("segmunich", tmp_path, split="train", bands=ten)
    assert ds.ids == ["a", "b"]
    s = ds[0]
    assert s.image.shape == (10, 128, 128) and [_band_of(a) for a in s.image] == [band_value(b) for b in ten]
    assert s.label.dtype == np.int64 and set(np.unique(s.label)) == {0, 6, 255}  # 32 -> 6
    assert set(np.unique(load_dataset("segmunich", tmp_path, split="test", bands=ten)[0].label)) == {0, 9, 255}
    with pytest.raises(BadSample) as e:
        load_dataset("segmunich", tmp_path, split="train")[0]
    assert e.value.reason == "missing_bands" and "B1, B9" in str(e.value)
    s = load_dataset("segmunich", tmp_path, split="train", fill_missing="mean")[0]
    assert s.image.shape == (12, 128, 128) and s.meta["filled_bands"] == ("B1", "B9")
    raw = load_dataset("segmunich", tmp_path, split="train", bands=ten)[0].image.astype(float)
    assert np.array_equal(s.image[0], np.rint(raw.mean(0)).astype(np.uint16))
    assert len(load_dataset("segmunich", tmp_path)) == 3


def test_fmow_csv_categories_and_years(tmp_path):
    rows = [("airport", 0, 6, "2015-07-25T08:45:14Z"), ("zoo", 3, 1, "2019-01-01T00:00:00Z"),
            ("dam", 1, 2, "1999-05-01T00:00:00Z"), ("zoo", 4, 2, "2021-02-01T00:00:00Z")]
    make_fmow(tmp_path, rows, "train")
    ds = load_dataset("fmow", tmp_path, split="train")
    assert ds.ids == ["airport_0_6", "zoo_3_1"]  # 1999 and 2021 left out
    assert [s.label for s in ds] == [0, 61]
    assert [_band_of(a) for a in ds[0].image] == [band_value(b) for b in PRETRAIN_BANDS]
    assert load_dataset("fmow", tmp_path, csv=tmp_path / "train.csv").ids == ds.ids


def test_folder_tree_tar_and_band_order_option(tmp_path):
    order = ("B4", "B3", "B2", "B8")
    write_tif(tmp_path / "raw" / "a" / "x.tif", stack(order, 8), descriptions=order)
    f2 = write_tif(tmp_path / "tmp" / "y.tif", stack(order, 8, seed=1), descriptions=order)
    f3 = write_tif(tmp_path / "tmp" / "z.tif", stack(order, 8, seed=2))  # no descriptions
    make_tar(tmp_path / "raw" / "shard-0.tar", {"s/y.tif": f2, "s/z.tif": f3})
    ds = load_dataset("folder", tmp_path / "raw", bands=("B2", "B8"))
    assert ds.ids == ["a/x", "shard-0/s/y", "shard-0/s/z"]
    assert ds[0].label is None and [_band_of(a) for a in ds[1].image] == [200, 800]
    assert ds[1].source.startswith("/vsitar/")
    with pytest.raises(BadSample) as e:
        ds[2]
    assert e.value.reason == "missing_bands"
    ds2 = load_dataset("folder", tmp_path / "raw" / "shard-0.tar", bands=("B2",), band_order=order)
    assert ds2.ids == ["s/y", "s/z"] and _band_of(ds2[1].image[0]) == 200


def _read_range(args):
    ds, a, b = args
    return [(ds[i].id, int(ds[i].image.sum())) for i in range(a, b)]


def test_pickled_dataset_reads_disjoint_ranges_in_a_process_pool(tmp_path):
    make_eurosat(tmp_path, ("Forest", "River", "Highway"), n=2, size=16)
    ds = load_dataset("eurosat", tmp_path)
    assert pickle.loads(pickle.dumps(ds)).ids == ds.ids
    with ProcessPoolExecutor(2) as pool:
        got = sum(pool.map(_read_range, [(ds, 0, 3), (ds, 3, 6)]), [])
    assert got == [(s.id, int(s.image.sum())) for s in ds]
    assert ds[-1].id == ds.ids[-1]
    with pytest.raises(IndexError):
        ds[6]


def test_errors_for_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset kind"):
        load_dataset("nope", tmp_path)
    with pytest.raises(TypeError, match="unknown option"):
        load_dataset("eurosat", tmp_path, colour="red")
    with pytest.raises(ValueError, match="split="):
        load_dataset("eurosat", tmp_path, split="dev")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("eurosat", tmp_path / "absent")
    with pytest.raises(ValueError, match="unknown Sentinel-2 band"):
        load_dataset("eurosat", tmp_path, bands=("B2", "B13"))
    assert os.listdir(tmp_path) == []


def test_oscd_second_date_on_another_grid_is_read_onto_date_1(tmp_path):
    import rasterio

    from readers_fixtures import from_origin

    make_oscd_city(tmp_path, "gamma")
    # date 2 re-written one 10 m pixel further east/south and bigger: it must be windowed onto date 1's grid
    for f in sorted((tmp_path / "gamma" / "imgs_2").glob("*.tif")):
        with rasterio.open(f) as src:
            a, t = src.read(1), src.transform
        big = np.pad(a, ((0, 3), (0, 3)), mode="edge")
        big[:, -3:] = 0
        write_tif(f, big, crs="EPSG:4326", transform=from_origin(t.c - 1e-4, t.f + 1e-4, t.a, -t.e))
    s = load_dataset("oscd", tmp_path, bands=("B2", "B5", "B1"))[0]
    assert s.image2.shape == s.image.shape == (3, 60, 60)
    assert [int(np.median(x)) for x in s.image2] == [201, 501, 101]
    assert s.image2[0, 0, 0] == 201 and s.image[0, 0, 0] == 203  # date 1's marked pixel; date 2 shifted by one


def test_all_bands_when_bands_is_none(tmp_path):
    make_eurosat(tmp_path, ("Forest",), n=1, size=8)
    s = load_dataset("eurosat", tmp_path, bands=None)[0]
    assert s.bands == ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B8A")
    make_ben_patch(tmp_path / "ben", "P")
    assert load_dataset("bigearthnet", tmp_path / "ben", bands=None)[0].image.shape == (12, 120, 120)
