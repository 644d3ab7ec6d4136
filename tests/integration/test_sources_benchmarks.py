"""Benchmark readers on tiny files in the real layouts: GEO-Bench task folders (per-sample HDF5 with GEO-Bench's
pickled band metadata, partition and label JSON) and UC Merced (RGB TIFFs in class folders)."""

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
h5py = pytest.importorskip("h5py")

from benchmark_fixtures import (  # noqa: E402
    S2_IDS, band_infos, geobench_classes, geobench_value, make_geobench, make_ucmerced, write_geobench_sample,
)

from spectralgpt.bands import PRETRAIN_BANDS, RGB_CAMERA_BANDS  # noqa: E402
from spectralgpt.data import BadSample, load_dataset  # noqa: E402
from spectralgpt.data.sources.bigearthnet import LABELS_19, LABELS_43, TO_19  # noqa: E402
from spectralgpt.data.sources.geobench import GEOBENCH_BANDS, read_attributes  # noqa: E402
from spectralgpt.data.sources.ucmerced import CLASSES as UCM_CLASSES  # noqa: E402

S2_DESCRIPTOR = {v: k for k, v in GEOBENCH_BANDS["s2"].items()}


def _bands_of(image):
    """The band constant each plane carries (values are constant + noise < 20)."""
    return [int(a.min()) - int(a.min()) % 50 for a in image]


def test_geobench_classification_bands_labels_splits_and_metadata(tmp_path):
    root, labels = make_geobench(tmp_path, "m-eurosat", georef=True)
    ds = load_dataset("geobench", root)
    assert ds.task == "classification" and ds.class_names[0] == "AnnualCrop" and len(ds.class_names) == 10
    assert ds.ids == ["s0", "s1", "s2", "s3", "s4"]
    assert {s: load_dataset("geobench", root, split=s).ids for s in ("train", "val", "test")} == {
        "train": ["s0", "s1", "s2"], "val": ["s3"], "test": ["s4"]}
    s = ds[2]
    assert s.bands == PRETRAIN_BANDS and s.image.shape == (12, 16, 16) and s.image.dtype == np.int16
    assert _bands_of(s.image) == [geobench_value(S2_DESCRIPTOR[b]) for b in PRETRAIN_BANDS]  # by name: B8A 850
    assert s.label == labels["s2"] == 2 and s.split == "train"
    assert s.crs.to_epsg() == 32633 and tuple(s.transform)[:6] == (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)
    assert s.meta["attributes"] == "read" and s.meta["sensor"] == "s2" and s.meta["skipped_bands"] == []
    assert s.meta["band_metadata"]["B8A"] == {"class": "Sentinel2", "name": "08A - Vegetation Red Edge",
                                              "wavelength_um": 0.865, "resolution_m": 20, "alt_names": ["8A", "08A"],
                                              "stored_resolution_m": 10.0}
    every = load_dataset("geobench", root, bands=None)[0]  # all 13, ESA order
    assert every.bands == S2_IDS and _bands_of(every.image) == [geobench_value(S2_DESCRIPTOR[b]) for b in S2_IDS]
    assert ds.band_statistics()["B4"]["min"] == 400.0 and len(ds.band_statistics()) == 13


def test_geobench_multilabel_43_and_19_classes(tmp_path):
    root, labels = make_geobench(tmp_path, "m-bigearthnet", task="multilabel", n_classes=43,
                                 skip_bands=("10 - SWIR - Cirrus",))
    ds = load_dataset("geobench", root, split="train")
    assert ds.task == "multilabel" and ds.class_names == LABELS_43
    s = ds[1]
    assert s.label.dtype == np.float32 and s.label.tolist() == labels["s1"].tolist()
    assert s.bands == PRETRAIN_BANDS  # m-bigearthnet's 12 bands are exactly the pretraining bands
    with pytest.raises(BadSample) as e:
        load_dataset("geobench", root, bands=("B10",))[0]
    assert e.value.reason == "missing_bands" and "B10" in str(e.value)
    ds19 = load_dataset("geobench", root, split="train", nomenclature=19)
    assert ds19.class_names == LABELS_19
    want = {TO_19[LABELS_43[i]] for i in np.flatnonzero(labels["s1"])} - {None}
    assert {LABELS_19[i] for i in np.flatnonzero(ds19[1].label)} == want
    # the label table wins; without it the label comes from the file's pickled attributes, the same
    os.remove(root / "label_stats.json")
    assert load_dataset("geobench", root, split="train")[1].label.tolist() == labels["s1"].tolist()


def test_geobench_segmentation_dated_bands_and_time_series(tmp_path):
    root, labels = make_geobench(tmp_path, "m-cashew-plant", task="segmentation", n_classes=7, dated=True,
                                 cloud_band=True, skip_bands=("10 - SWIR - Cirrus",))
    ds = load_dataset("geobench", root)
    assert ds.task == "segmentation" and ds.class_names[1] == "well-managed plantation"
    s = ds[3]
    assert s.label.dtype == np.int64 and np.array_equal(s.label, labels["s3"])
    assert s.meta["date"] == "2019-11-05" and s.meta["skipped_bands"] == ["Cloud Probability_2019-11-05"]
    assert s.meta["file_bands"][8] == "08A - Vegetation Red Edge_2019-11-05" and s.bands == PRETRAIN_BANDS
    assert load_dataset("geobench", tmp_path / "m-cashew-plant", dataset="m-cashew-plantation").task == "segmentation"
    # a sample with two dates per band is a time series: refused unless date= picks one
    import datetime

    path = root / "s0.hdf5"
    with geobench_classes() as mod:
        write_geobench_sample(path, band_infos(mod, "s2"), mask=labels["s0"], date=datetime.date(2019, 11, 5))
        with h5py.File(path, "a") as fp:
            for k in list(fp.keys()):
                if k != "label":
                    fp[k.replace("2019-11-05", "2020-01-10")] = fp[k][()] + 1
    with pytest.raises(BadSample, match=r"time series of 2 dates \(2019-11-05, 2020-01-10\).*date='first'"):
        ds[0]
    late = load_dataset("geobench", root, date="last")[0]
    assert late.meta["date"] == "2020-01-10" and int(late.image[3].min()) == 401
    assert load_dataset("geobench", root, date="2019-11-05")[0].meta["date"] == "2019-11-05"
    with h5py.File(root / "s1.hdf5", "a") as fp:  # a mask declaring 40 GB is refused before it is read
        del fp["label"]
        fp.create_dataset("label", shape=(200000, 200000), dtype="uint8", chunks=(64, 64), compression="gzip")
    with pytest.raises(BadSample, match=r"label is \[200000, 200000\], image \[16, 16\]"):
        ds[1]


def test_geobench_sensors_from_metadata_names_and_option(tmp_path):
    root, _ = make_geobench(tmp_path, "m-forestnet", sensor="oli", n_classes=12)
    s = load_dataset("geobench", root, bands=None)[0]
    assert s.bands == ("OLI:B1", "OLI:B2", "OLI:B3", "OLI:B4", "OLI:B5", "OLI:B6", "OLI:B7")
    assert s.meta["sensor"] == "oli" and _bands_of(s.image)[4] == 500  # '05 - NIR' is OLI B5, not S2 red edge
    # an unknown folder name and no label tables: sensor from the band metadata, labels from the attributes
    root, labels = make_geobench(tmp_path, "my-pv", sensor="rgb", n_classes=2, label_tables=False)
    ds = load_dataset("geobench", root, bands=None)
    assert ds.task == "classification" and ds.class_names is None
    assert ds[1].bands == RGB_CAMERA_BANDS and [int(a.min()) for a in ds[1].image][:1] >= [1001]
    assert [s.label for s in ds] == [labels[i] for i in ds.ids]
    with pytest.raises(BadSample) as e:  # the 12 pretraining bands are not in an RGB image
        load_dataset("geobench", root)[0]
    assert e.value.reason == "missing_bands"
    with pytest.raises(BadSample, match=r"holds no band GEO-Bench's s2 table names \(datasets: Blue, Green, Red\)"):
        load_dataset("geobench", root, bands=None, sensor="s2")[0]


def test_geobench_partitions(tmp_path):
    root, _ = make_geobench(tmp_path, "m-brick-kiln", n_classes=2)
    (root / "0.01x_train_partition.json").write_text(json.dumps({"train": ["s1"], "valid": ["s3"], "test": ["s4"]}))
    assert load_dataset("geobench", root, partition="0.01x_train", split="train").ids == ["s1"]
    with pytest.raises(ValueError, match=r"no partition 'x' .*have 0.01x_train, default"):
        load_dataset("geobench", root, partition="x")
    for p in root.glob("*_partition.json"):
        p.unlink()
    ids = {s: set(load_dataset("geobench", root, split=s).ids) for s in ("train", "val", "test")}
    assert set().union(*ids.values()) == {"s0", "s1", "s2", "s3", "s4"}  # no partition: hash split of every file


def test_geobench_refuses_code_in_the_pickled_attributes(tmp_path):
    root, labels = make_geobench(tmp_path, "m-eurosat")
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with geobench_classes() as mod:
        bands = band_infos(mod, "s2")
        evil = str(pickle.dumps({"bands_order": [], "label": 1, "x": Evil()}))
        write_geobench_sample(root / "s0.hdf5", bands, attrs_override=evil)
    with pytest.raises(ValueError, match=r"global (posix|os)\.system is not allowed"):
        read_attributes(evil)
    s = load_dataset("geobench", root)[0]  # pixels and the label_map.json label need no attributes
    assert s.label == labels["s0"] and s.meta["attributes"].startswith("not used: refused the pickled metadata")
    assert not marker.exists()
    os.remove(root / "label_map.json")  # now the label could only come from the refused attributes
    with pytest.raises(BadSample) as e:
        load_dataset("geobench", root)[0]
    assert e.value.reason == "bad_label" and "refused" in str(e.value) and not marker.exists()


def test_geobench_hostile_files(tmp_path):
    root, _ = make_geobench(tmp_path, "m-eurosat")
    (root / "s1.hdf5").write_text("<html>404</html>")
    data = (root / "s2.hdf5").read_bytes()
    (root / "s2.hdf5").write_bytes(data[: len(data) // 3])
    with h5py.File(root / "s3.hdf5", "a") as fp:  # a band that is a link to another file
        del fp["04 - Red"]
        fp["04 - Red"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/data")
    with h5py.File(tmp_path / "elsewhere.h5", "w") as fp:
        fp["data"] = np.zeros((16, 16), np.int16)
    table = json.loads((root / "default_partition.json").read_text())
    table["test"].append("../outside")
    (root / "default_partition.json").write_text(json.dumps(table))
    ds = load_dataset("geobench", root)
    reasons = {}
    for i, sid in enumerate(ds.ids):
        try:
            ds[i]
        except BadSample as b:
            reasons[sid] = (b.reason, str(b))
    assert reasons["s1"][0] == "unreadable" and "not an HDF5 file" in reasons["s1"][1]
    assert reasons["s2"][0] == "truncated"
    assert reasons["s3"][0] == "unreadable" and "ExternalLink" in reasons["s3"][1]
    assert reasons["../outside"][0] == "outside_root"
    assert set(reasons) == {"s1", "s2", "s3", "../outside"}


def test_ucmerced_bands_labels_splits_and_roots(tmp_path):
    root, names = make_ucmerced(tmp_path, split_lists=True)
    ds = load_dataset("ucmerced", root)
    assert len(ds) == 9 and ds.bands == RGB_CAMERA_BANDS and len(ds.class_names) == 21
    s = ds[4]
    assert s.id == "airplane01" and s.label == UCM_CLASSES.index("airplane") == 1
    assert [int(np.median(a)) for a in s.image] == [11, 21, 31] and s.crs is None and s.meta["size"] == [16, 16]
    assert load_dataset("ucmerced", root, split="train").ids == sorted(n[:-4] for n in names[:-2])
    assert load_dataset("ucmerced", root, split="val").ids == ["river01"]
    for sub in ("UCMerced_LandUse", "UCMerced_LandUse/Images"):  # the lists are found above the root too
        assert load_dataset("ucmerced", root / sub, split="test").ids == ["river02"]
    assert load_dataset("ucmerced", root, bands=("RGB:BLUE", "RGB:RED"))[0].image[0, 1, 1] == 30
    with pytest.raises(BadSample) as e:
        load_dataset("ucmerced", root, bands=PRETRAIN_BANDS)[0]
    assert e.value.reason == "missing_bands"


def test_ucmerced_bad_entries(tmp_path):
    root, _ = make_ucmerced(tmp_path, classes=("forest",), n=2)
    (root / "uc_merced-test.txt").write_text("forest01.tif\nforest07.tif\n../x.tif\n")
    images = root / "UCMerced_LandUse" / "Images"
    (images / "volcano").mkdir()
    (images / "forest" / "forest01.tif").rename(images / "volcano" / "volcano00.tif")
    reasons = {}
    for split in ("test", None):
        ds = load_dataset("ucmerced", root, split=split)
        for i, sid in enumerate(ds.ids):
            try:
                ds[i]
            except BadSample as b:
                reasons[(split, sid)] = b.reason
    assert reasons == {("test", "forest01"): "missing_file", ("test", "forest07"): "missing_file",
                       ("test", "x"): "unknown_label", (None, "volcano00"): "unknown_label"}
