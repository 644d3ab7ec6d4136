import numpy as np
import pytest

from spectralgpt.bands import (HLS_BANDS, OLI_BANDS, PRETRAIN_BANDS, RGB_CAMERA_BANDS, BandMapping, MissingBandsError,
                               band_indices, band_info, canonical, canonical_list, equivalent_band, select_bands,
                               sensor_bands)

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


# ------------------------------------------------------------------------------------ other sensors


def test_sensor_names_are_namespaced():
    assert canonical("oli:b05") == canonical("B5", sensor="landsat9") == "OLI:B5"
    assert canonical("B5") == "B5" and canonical("S2:B08A") == "B8A" == canonical("b8a", sensor="sentinel-2")
    assert canonical_list(["Blue", "NIR Narrow", "swir1", "SWIR-2"], sensor="hls") == (
        "HLS:BLUE", "HLS:NIR_NARROW", "HLS:SWIR_1", "HLS:SWIR_2")
    assert canonical_list(["red", "green", "blue"], sensor="rgb") == RGB_CAMERA_BANDS == sensor_bands("rgb")
    assert len(OLI_BANDS) == 11 and band_info("OLI:B10").wavelength_nm > 10000
    assert band_info("rgb:red").resolution_m is None and band_info("B2").resolution_m == 10
    with pytest.raises(ValueError, match="unknown HLS band name 'B8A'"):
        canonical("B8A", sensor="hls")
    with pytest.raises(ValueError, match="unknown sensor 'landsat7'"):
        canonical("B1", sensor="landsat7")
    with pytest.raises(ValueError, match="names sensor 'oli', but sensor 'hls'"):
        canonical("oli:B5", sensor="hls")
    with pytest.raises(ValueError, match="more than once"):
        canonical_list(["HLS:BLUE", "blue"], sensor="hls")


def test_equivalence_by_wavelength():
    assert equivalent_band("HLS:NIR_NARROW") == "B8A" and equivalent_band("OLI:B5") == "B8A"
    assert [equivalent_band(b) for b in HLS_BANDS] == ["B2", "B3", "B4", "B8A", "B11", "B12"]
    assert [equivalent_band(b) for b in RGB_CAMERA_BANDS] == ["B4", "B3", "B2"]
    assert equivalent_band("OLI:B8") is None and equivalent_band("OLI:B10") is None  # panchromatic, thermal
    assert equivalent_band("B10") is None  # cirrus is not a pretraining band
    assert equivalent_band("OLI:B2", tolerance_nm=5) is None  # 482 vs 492.4 nm
    assert equivalent_band("B8") == "B8"  # a band of the set is itself


HLS_PLAIN = ["Blue", "Green", "Red", "NIR Narrow", "SWIR 1", "SWIR 2"]


def images(n_bands, seed=0):
    return np.random.default_rng(seed).random((2, n_bands, 3, 4)).astype(np.float32)


def test_mapping_by_name_reorders_and_drops():
    order = list(EUROSAT_ORDER)  # 13 bands, B10 among them and B8A last
    m = BandMapping.build(order)
    assert m.matched == {b: b for b in PRETRAIN_BANDS} and m.unused == ("B10",) and not m.filled
    x = images(13)
    np.testing.assert_array_equal(m(x), x[:, band_indices(order, PRETRAIN_BANDS)])
    identity = BandMapping.build(PRETRAIN_BANDS)
    same = x[:, :12]
    assert identity.identity and identity(same) is same  # nothing to do: the input itself


@pytest.mark.parametrize("fill", ["zeros", "mean", "nearest"])
def test_hls_bands_by_wavelength_and_each_fill(fill):
    m = BandMapping.build(HLS_PLAIN, sensor="hls", fill=fill, mean=0.25)
    assert m.matched == {"B2": "HLS:BLUE", "B3": "HLS:GREEN", "B4": "HLS:RED", "B8A": "HLS:NIR_NARROW",
                         "B11": "HLS:SWIR_1", "B12": "HLS:SWIR_2"}
    assert set(m.filled) == {"B1", "B5", "B6", "B7", "B8", "B9"} and set(m.filled.values()) == {fill}
    x = images(6)
    y = m(x)
    assert y.shape == (2, 12, 3, 4)
    k = {b: i for i, b in enumerate(PRETRAIN_BANDS)}
    for model_band, (i, _) in zip(("B2", "B3", "B4", "B8A", "B11", "B12"), enumerate(HLS_BANDS)):
        np.testing.assert_array_equal(y[:, k[model_band]], x[:, i])
    expect = {"zeros": {"B1": 0.0, "B9": 0.0}, "mean": {"B1": 0.25, "B9": 0.25}}
    if fill == "nearest":  # B1 (443 nm) <- blue (482), B5 (704) and B6 (740) <- red (655), B7..B9 <- NIR narrow
        for b, src in {"B1": 0, "B5": 2, "B6": 2, "B7": 3, "B8": 3, "B9": 3}.items():
            np.testing.assert_array_equal(y[:, k[b]], x[:, src])
    else:
        for b, v in expect[fill].items():
            assert (y[:, k[b]] == v).all()
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(m(torch.from_numpy(x)).numpy(), y)  # torch and numpy agree
    assert BandMapping.from_dict(m.to_dict()) == m


def test_mean_fill_is_set_once_measured():
    m = BandMapping.build(RGB_CAMERA_BANDS, fill="mean").with_mean(0.4)
    assert {m.value[i] for i, h in enumerate(m.how) if h == "mean"} == {0.4}
    with pytest.raises(ValueError, match="not finite"):
        m.with_mean(float("nan"))


def test_oli_mapping_leaves_thermal_and_pan_unused():
    m = BandMapping.build(OLI_BANDS, fill="nearest")
    assert m.unused == ("OLI:B8", "OLI:B9", "OLI:B10", "OLI:B11")
    assert m.matched["B8A"] == "OLI:B5" and "B11" in m.matched


def test_mapping_refusals():
    with pytest.raises(ValueError, match="none of the input bands OLI:B10, OLI:B11"):
        BandMapping.build(["OLI:B10", "OLI:B11"])
    with pytest.raises(ValueError, match="fill 'median'"):
        BandMapping.build(HLS_BANDS, fill="median")
    m = BandMapping.build(HLS_BANDS)
    with pytest.raises(ValueError, match="image has 5 bands; this band mapping takes 6"):
        m(images(5))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("bands"), "missing entry 'bands'"),
    (lambda d: d["bands"].pop(), "must list the 12 model bands"),
    (lambda d: d["bands"][1].update(input=9), "input index in \\[0, 6\\)"),
    (lambda d: d["bands"][1].update(input_band="HLS:RED"), "input index in \\[0, 6\\) and its band"),
    (lambda d: d["bands"][0].update(value=float("inf")), "finite `value`"),
    (lambda d: d["bands"][0].update(value=0.5), "0 for zeros"),
    (lambda d: d["bands"][0].update(how="guess"), "how: one of"),
    (lambda d: d.update(input_bands=["X1"] * 6), "unknown Sentinel-2 band"),
    (lambda d: d.update(fill="median"), "fill 'median'"),
    (lambda d: d.update(input_bands=["B1"] * 100), "more than once|1 to 64"),
])
def test_a_forged_record_is_refused(edit, message):
    d = BandMapping.build(HLS_BANDS).to_dict()
    edit(d)
    with pytest.raises(ValueError, match=message):
        BandMapping.from_dict(d)


def test_missing_bands_error_is_a_key_and_a_value_error():
    with pytest.raises(MissingBandsError) as e:
        band_indices(["B1"], ["B2"])
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    assert str(e.value) == "missing band(s) B2: the source has B1"
