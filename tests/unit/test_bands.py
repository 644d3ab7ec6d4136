import numpy as np
import pytest

from spectralgpt.bands import PRETRAIN_BANDS, band_indices, canonical, select_bands

EUROSAT_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A"]


def test_canonical_names():
    assert canonical("B01") == "B1"
    assert canonical("b8a") == "B8A"
    assert canonical("B08A") == "B8A"
    with pytest.raises(ValueError, match="unknown Sentinel-2 band"):
        canonical("B13")


def test_eurosat_b8a_lands_at_index_8():
    img = np.arange(13)[:, None, None] * np.ones((13, 2, 2))
    out = select_bands(img, EUROSAT_ORDER, PRETRAIN_BANDS)
    assert out.shape == (12, 2, 2)
    assert out[8, 0, 0] == 12  # B8A was last in the file
    assert out[9, 0, 0] == 8  # B9
    assert out[10, 0, 0] == 10  # B11 (B10 dropped)


def test_missing_band_is_named():
    with pytest.raises(KeyError, match="B8A"):
        band_indices(["B1", "B2"], ["B1", "B8A"])
