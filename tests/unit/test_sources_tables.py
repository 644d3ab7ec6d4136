"""Pure tables and helpers of the dataset readers: label nomenclatures, masks, splits, paths."""

import numpy as np
import pytest

from spectralgpt.data.sample import BadSample
from spectralgpt.data.sources import DATASET_KINDS, hash_split
from spectralgpt.data.sources.base import normalize_split, resolve_in_root
from spectralgpt.data.sources.bigearthnet import (
    DROPPED_43, GROUPS_43_TO_19, LABELS_19, LABELS_43, TO_19, labels_to_multihot,
)
from spectralgpt.data.sources.eurosat import CLASSES, EUROSAT_FILE_BANDS
from spectralgpt.data.sources.fmow import CATEGORIES
from spectralgpt.data.sources.oscd import _fit, change_mask, read_city_list
from spectralgpt.data.sources.segmunich import remap_labels


def test_bigearthnet_43_to_19_table():
    assert len(LABELS_43) == 43 == len(set(LABELS_43)) and len(LABELS_19) == 19 == len(set(LABELS_19))
    assert len(GROUPS_43_TO_19) == 22 and len(DROPPED_43) == 11
    assert all(n in TO_19 for n in LABELS_43)  # every 43-class name is mapped or dropped
    assert {v for v in TO_19.values() if v} == set(LABELS_19)  # every 19-class label is reachable
    kept_as_is = [n for n in LABELS_43 if n in LABELS_19]
    assert len(kept_as_is) == 9 and len(kept_as_is) + 1 + 22 + 11 == 43  # + 'Transitional woodland/shrub'
    y = labels_to_multihot(["Continuous urban fabric", "Discontinuous urban fabric", "Port areas", "Estuaries"])
    assert y.dtype == np.float32 and np.flatnonzero(y).tolist() == [0, 18]
    assert labels_to_multihot(["Transitional woodland/shrub"])[13] == 1
    assert labels_to_multihot([]).sum() == 0
    with pytest.raises(BadSample) as e:
        labels_to_multihot(["Pastures", "Moon"])
    assert e.value.reason == "unknown_label" and "Moon" in str(e.value)


def test_eurosat_and_fmow_class_lists():
    assert list(CLASSES) == sorted(CLASSES) and len(CLASSES) == 10
    assert CLASSES[0] == "AnnualCrop" and CLASSES[9] == "SeaLake"
    assert len(CATEGORIES) == 62 == len(set(CATEGORIES)) and list(CATEGORIES) == sorted(CATEGORIES)
    assert EUROSAT_FILE_BANDS[-1] == "B8A" and EUROSAT_FILE_BANDS.index("B9") == 8


@pytest.mark.parametrize(
    "values, changed",
    [([1, 2, 1, 1], [0, 1, 0, 0]), ([0, 255, 255, 0], [0, 1, 1, 0]), ([0, 1, 0, 0], [0, 1, 0, 0]),
     ([1, 1, 1, 1], [0, 0, 0, 0])],
)
def test_oscd_change_mask_encodings(values, changed):
    out = change_mask(np.array(values, np.uint8).reshape(2, 2))
    assert out.dtype == np.uint8 and out.ravel().tolist() == changed


def test_oscd_change_mask_rejects_other_values_and_helpers(tmp_path):
    with pytest.raises(BadSample) as e:
        change_mask(np.array([[0, 1], [2, 3]], np.uint8))
    assert e.value.reason == "unknown_label"
    (tmp_path / "train.txt").write_text("a, b,c\n")
    assert read_city_list(tmp_path / "train.txt") == ["a", "b", "c"]
    a = np.arange(12).reshape(1, 3, 4)
    assert _fit(a, (4, 3)).shape == (1, 4, 3) and _fit(a, (4, 3))[0, 3].tolist() == [8, 9, 10]


def test_segmunich_remap():
    raw = np.array([0, 21, 22, 23, 31, 32, 33, 41, 13, 14, 255, 5], np.uint8)
    assert remap_labels(raw).tolist() == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 255, 5]


def test_hash_split_is_stable_and_has_the_documented_fractions():
    ids = [f"patch_{i}" for i in range(20000)]
    s = [hash_split(i) for i in ids]
    assert s == [hash_split(i) for i in ids]
    assert hash_split("AnnualCrop_1") == hash_split("AnnualCrop_1")
    frac = {k: s.count(k) / len(s) for k in ("train", "val", "test")}
    assert abs(frac["train"] - 0.8) < 0.02 and abs(frac["val"] - 0.1) < 0.01 and abs(frac["test"] - 0.1) < 0.01


def test_split_names_and_root_escapes():
    assert normalize_split("valid") == "val" and normalize_split(None) is None and normalize_split("TEST") == "test"
    with pytest.raises(ValueError):
        normalize_split("dev")
    root = "/data/eurosat"
    assert resolve_in_root(root, "Forest/Forest_1.tif") == ("/data/eurosat/Forest/Forest_1.tif", None)
    assert resolve_in_root(root, "a/../Forest/x.tif")[1] is None
    for bad in ("../x.tif", "Forest/../../x.tif", "/etc/passwd", "../eurosat2/x.tif"):
        assert resolve_in_root(root, bad)[1][0] == "outside_root"


def test_all_kinds_registered():
    assert set(DATASET_KINDS) == {"eurosat", "bigearthnet", "oscd", "sen1floods11", "segmunich", "fmow", "folder",
                                  "hls_burn_scars", "geobench", "ucmerced"}
    for cls in DATASET_KINDS.values():
        assert cls.__module__ and __import__(cls.__module__, fromlist=["x"]).__doc__.strip()
