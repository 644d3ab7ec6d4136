"""Datasets as downloaded: OSCD's three-folder archive layout (rect or raw images), and a root that yields no
samples failing with the layout the reader expected, for every kind of reader."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readers_fixtures import OSCD_IMAGES, band_value, make_oscd_city, make_oscd_download  # noqa: E402

from spectralgpt.bands import PRETRAIN_BANDS  # noqa: E402
from spectralgpt.data import BadSample, load_dataset  # noqa: E402
from spectralgpt.data.sources import DATASET_KINDS  # noqa: E402
from spectralgpt.data.sources.base import EmptyDatasetError  # noqa: E402


def _medians(a):
    return [int(np.median(x)) for x in a]


def test_oscd_download_layout_rect_by_default_raw_on_request(tmp_path):
    make_oscd_download(tmp_path, {"train": ["alpha", "beta"], "test": ["gamma"]})
    ds = load_dataset("oscd", tmp_path)
    assert ds.ids == ["alpha", "beta", "gamma"]
    assert [e.split for e in ds._entries] == ["train", "train", "test"]
    s = load_dataset("oscd", tmp_path, split="test")[0]
    assert s.id == "gamma" and s.meta["images"] == "rect" and s.label.sum() == 1  # mask from "- Test Labels"
    assert _medians(s.image) == [band_value(b) + 10 for b in PRETRAIN_BANDS]
    assert _medians(s.image2) == [band_value(b) + 11 for b in PRETRAIN_BANDS]
    assert s.meta["dates"] == {"date_1": "20161130", "date_2": "20170829"}
    raw = load_dataset("oscd", tmp_path, split="train", images="raw")[1]
    assert raw.id == "beta" and raw.meta["images"] == "raw" and raw.label.sum() == 2
    assert _medians(raw.image) == [band_value(b) for b in PRETRAIN_BANDS]
    assert _medians(raw.image2) == [band_value(b) + 1 for b in PRETRAIN_BANDS]
    # the Images folder itself as the root finds its sibling Labels folders
    assert load_dataset("oscd", tmp_path / OSCD_IMAGES, split="train")[0].label.sum() == 1


def test_oscd_download_without_lists_splits_by_labels_folder(tmp_path):
    make_oscd_download(tmp_path, {"train": ["alpha"], "test": ["gamma"]}, lists=False)
    assert load_dataset("oscd", tmp_path, split="test").ids == ["gamma"]
    assert load_dataset("oscd", tmp_path, split="train").ids == ["alpha"]


def test_oscd_images_option(tmp_path):
    make_oscd_city(tmp_path, "delta")
    assert load_dataset("oscd", tmp_path)[0].meta["images"] == "raw"  # auto: no rect folders
    with pytest.raises(BadSample) as e:
        load_dataset("oscd", tmp_path, images="rect")[0]
    assert e.value.reason == "missing_file" and "imgs_1_rect" in str(e.value)
    with pytest.raises(ValueError, match="images='both'.*auto, rect, raw"):
        load_dataset("oscd", tmp_path, images="both")


@pytest.mark.parametrize("kind", sorted(DATASET_KINDS))
def test_a_root_without_samples_names_the_expected_layout(tmp_path, kind):
    (tmp_path / "notes.txt").write_text("not a dataset\n")
    (tmp_path / "sub").mkdir()
    with pytest.raises(EmptyDatasetError, match=f"{kind}: no samples found under .*expected layout: <root>/"):
        load_dataset(kind, tmp_path)
    with pytest.raises(EmptyDatasetError):
        load_dataset(kind, tmp_path, split="train")


def test_an_empty_split_of_a_populated_root_is_not_an_error(tmp_path):
    make_oscd_download(tmp_path, {"train": ["alpha"], "test": ["gamma"]})
    assert len(load_dataset("oscd", tmp_path, split="val")) == 0
