"""spectralgpt.io.raster on small real GeoTIFFs written into tmp_path."""

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.errors
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readers_fixtures import EUROSAT_ORDER, band_value, from_origin, make_tar, stack, write_tif  # noqa: E402

from spectralgpt.data.sample import BadSample  # noqa: E402
from spectralgpt.io import raster  # noqa: E402


def _which(a):
    """The band_value a stack() band was built from (values are band_value + noise in [0, 20))."""
    return int(a.min()) - int(a.min()) % 50


def test_multiband_by_documented_order(tmp_path):
    p = write_tif(tmp_path / "e.tif", stack(EUROSAT_ORDER, 16))
    r = raster.read_multiband(p, ["B8A", "B9", "B2"], band_order=EUROSAT_ORDER)
    assert r.bands == ("B8A", "B9", "B2") and r.array.dtype == np.uint16
    assert [_which(a) for a in r.array] == [850, 900, 200]
    assert r.crs.to_epsg() == 32633 and r.transform == from_origin(500000, 5000000, 10, 10)


def test_multiband_descriptions_win_and_missing_bands_are_named(tmp_path):
    order = ("B4", "B3", "B2")
    p = write_tif(tmp_path / "d.tif", stack(order, 8), descriptions=["B04", "B03", "B02"])
    r = raster.read_multiband(p, ["B2", "B4"])
    assert [_which(a) for a in r.array] == [200, 400]
    with pytest.raises(BadSample) as e:
        raster.read_multiband(p, ["B2", "B8", "B11"])
    assert e.value.reason == "missing_bands" and "B8, B11" in str(e.value) and "d.tif" in str(e.value)
    # no descriptions and no order: band names unknown
    q = write_tif(tmp_path / "n.tif", stack(order, 8))
    with pytest.raises(BadSample, match="band names unknown") as e:
        raster.read_multiband(q)
    assert e.value.reason == "missing_bands"
    # an order of the wrong length
    with pytest.raises(BadSample, match="3 band"):
        raster.read_multiband(q, band_order=("B1", "B2"))


def test_fill_missing_mean(tmp_path):
    p = write_tif(tmp_path / "d.tif", np.stack([np.full((4, 4), v, np.uint16) for v in (100, 200, 301)]),
                  descriptions=["B2", "B3", "B4"])
    r = raster.read_multiband(p, ["B1", "B2", "B9"], fill_missing="mean")
    assert r.array.dtype == np.uint16 and r.array[:, 0, 0].tolist() == [200, 100, 200]
    assert r.meta["filled_bands"] == ("B1", "B9")


def test_windowed_read_keeps_the_window_transform(tmp_path):
    a = np.arange(3 * 40 * 40, dtype=np.uint16).reshape(3, 40, 40)
    p = write_tif(tmp_path / "big.tif", a, descriptions=["B2", "B3", "B4"])
    w = Window(10, 20, 8, 6)
    r = raster.read_multiband(p, ["B4"], window=w)
    assert np.array_equal(r.array[0], a[2, 20:26, 10:18])
    assert r.transform == from_origin(500000 + 100, 5000000 - 200, 10, 10)
    wins = list(raster.iter_windows(40, 40, 16))
    assert len(wins) == 9 and wins[-1] == Window(24, 24, 16, 16)
    assert list(raster.iter_windows(10, 10, 16)) == [Window(0, 0, 10, 10)]


def _band_files(tmp_path, size=60):
    """10/20/60 m single-band files over one 600 m x 600 m extent."""
    files = {}
    for b, res in (("B2", 10), ("B4", 10), ("B5", 20), ("B8A", 20), ("B1", 60)):
        n = size * 10 // res
        a = np.full((n, n), band_value(b), np.uint16)
        a[: n // 2] += 50  # a north/south step so resampling is visible
        files[b] = write_tif(tmp_path / f"x_{b}.tif", a, transform=from_origin(400000, 5000000, res, res))
    return files


def test_band_files_resampled_onto_the_10m_grid(tmp_path):
    files = _band_files(tmp_path)
    r = raster.read_band_files(files, ["B1", "B2", "B5", "B8A"])
    assert r.array.shape == (4, 60, 60) and r.array.dtype == np.uint16
    assert r.transform == from_origin(400000, 5000000, 10, 10) and r.crs.to_epsg() == 32633
    assert r.meta["ref_band"] == "B2"
    b1 = r.array[0]
    assert b1[0, 0] == 150 and b1[-1, -1] == 100  # values kept far from the step
    assert b1.min() >= 100 and b1.max() <= 150  # bilinear: no overshoot
    assert np.array_equal(r.array[1], rasterio.open(files["B2"]).read(1))  # the reference band is untouched
    with pytest.raises(BadSample) as e:
        raster.read_band_files(files, ["B2", "B9", "B12"])
    assert e.value.reason == "missing_bands" and "B9, B12" in str(e.value)


def test_band_files_window_and_cubic(tmp_path):
    files = _band_files(tmp_path)
    full = raster.read_band_files(files, ["B1", "B5"])
    w = Window(12, 6, 24, 18)
    part = raster.read_band_files(files, ["B1", "B5"], window=w)
    assert part.array.shape == (2, 18, 24)
    assert part.transform == from_origin(400000 + 120, 5000000 - 60, 10, 10)
    assert np.abs(part.array.astype(int) - full.array[:, 6:24, 12:36]).max() <= 2
    cub = raster.read_band_files(files, ["B1"], resampling="cubic")
    assert cub.array.shape == (1, 60, 60) and cub.meta["resampling"] == "cubic"


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # rasterio's boundless read internals
def test_grid_partly_outside_a_band_is_filled(tmp_path):
    a = np.full((30, 30), 500, np.uint16)
    p = write_tif(tmp_path / "b5.tif", a, transform=from_origin(400000, 5000000, 20, 20))
    grid = raster.Grid(rasterio.crs.CRS.from_epsg(32633), from_origin(400300, 5000000, 10, 10), 60, 60)
    out = raster.read_onto_grid(p, grid)
    assert out[:, :20].min() == 500 and out[:, -10:].max() == 0  # east of the file: filled with 0


def test_vsitar_reads_members_in_place(tmp_path):
    a = stack(("B2", "B3"), 8)
    f = write_tif(tmp_path / "m.tif", a, descriptions=["B2", "B3"])
    tar = make_tar(tmp_path / "s.tar", {"deep/dir/m.tif": f, "notes.txt": f})
    assert raster.list_tar_members(tar) == ["deep/dir/m.tif"]
    r = raster.read_multiband(raster.vsitar(tar, "deep/dir/m.tif"))
    assert np.array_equal(r.array, a) and r.path.startswith("/vsitar/")
    with pytest.raises(BadSample) as e:
        raster.read_multiband(raster.vsitar(tar, "deep/dir/absent.tif"))
    assert e.value.reason == "missing_file"
    (tmp_path / "bad.tar").write_text("not a tar")
    with pytest.raises(BadSample) as e:
        raster.list_tar_members(tmp_path / "bad.tar")
    assert e.value.reason == "unreadable" and "bad.tar" in str(e.value)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"hello, I am text\n", "not_geotiff"),
        (b"<html><body>403</body></html>", "not_geotiff"),
        (b"", "truncated"),
        (None, "truncated"),  # first half of a real GeoTIFF
    ],
)
def test_errors_name_the_file_and_the_problem(tmp_path, content, reason):
    p = tmp_path / "broken.tif"
    if content is None:
        good = write_tif(tmp_path / "good.tif", stack(("B2",), 64), descriptions=["B2"]).read_bytes()
        p.write_bytes(good[: len(good) // 2])
    else:
        p.write_bytes(content)
    with pytest.raises(BadSample) as e:
        raster.read_multiband(p, band_order=("B2",))
    assert e.value.reason == reason and "broken.tif" in str(e.value)


def test_truncated_pixels_after_a_good_header(tmp_path):
    # a tiled, compressed file with its header first: the header opens, the pixel read fails
    p = tmp_path / "tiled.tif"
    a = np.random.default_rng(0).integers(0, 10000, (1, 256, 256)).astype(np.uint16)
    with rasterio.open(p, "w", driver="GTiff", height=256, width=256, count=1, dtype="uint16", tiled=True,
                       blockxsize=64, blockysize=64, compress="deflate", crs="EPSG:32633",
                       transform=from_origin(0, 0, 10, 10)) as d:
        d.write(a)
    data = p.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(BadSample) as e:
        raster.read_multiband(cut, band_order=("B2",))
    assert e.value.reason == "truncated" and "cut.tif" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(BadSample) as e:
        raster.read_multiband(tmp_path / "nope.tif")
    assert e.value.reason == "missing_file" and "nope.tif" in str(e.value)


def test_png_is_not_a_geotiff_but_is_a_valid_mask(tmp_path):
    p = tmp_path / "cm.png"
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning):
        with rasterio.open(p, "w", driver="PNG", height=4, width=4, count=1, dtype="uint8") as d:
            d.write(np.full((1, 4, 4), 255, np.uint8))
    with pytest.raises(BadSample) as e:
        raster.read_multiband(p, band_order=("B2",))
    assert e.value.reason == "not_geotiff"
    m, crs, _ = raster.read_mask(p)
    assert m.shape == (4, 4) and crs is None
