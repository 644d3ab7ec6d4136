"""Readers against hostile files: URLs and GDAL network paths are never fetched (a loopback HTTP server counts
requests), a band file that is really VRT XML is refused before GDAL parses it, a sparse GeoTIFF that declares
12 x 200000 x 200000 pixels is refused before reading, messages never quote file contents; real JPEG 2000 band
files still read. Predictions are Cloud-Optimized GeoTIFFs with the umask's file mode."""

import os
import stat

import numpy as np
import pytest
import rasterio
from hostile_helpers import SECRET, loopback_server, url_paths, write_secret, write_sparse_huge, write_vrt_disguise
from inference_helpers import CRS, TRANSFORM, save_tiny, scene_array, write_band_folder, write_scene

from spectralgpt.data.sample import BadSample
from spectralgpt.inference import Predictor, predict_scene
from spectralgpt.inference.scene_io import open_scene
from spectralgpt.io import raster

BANDS12 = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]


def test_urls_and_network_paths_are_refused_before_anything_is_fetched(tmp_path):
    with loopback_server() as (base, hits):
        for path in url_paths(base):
            for read in (lambda p: raster.read_multiband(p, band_order=BANDS12), raster.grid_of,
                         lambda p: raster.read_band_files({"B2": p}), raster.read_mask):
                with pytest.raises(BadSample, match="only local files"):
                    read(path)
            with pytest.raises(ValueError):
                with open_scene(path):
                    pass
        assert hits == []


def test_a_vrt_disguised_as_a_band_file_is_refused_unparsed(tmp_path, monkeypatch):
    private = write_scene(tmp_path / "private.tif", scene_array(16, 16))
    seen = []
    real = rasterio.open
    monkeypatch.setattr(rasterio, "open", lambda p, *a, **k: seen.append(str(p)) or real(p, *a, **k))
    for name in ("x_B02.jp2", "x_B02.tif"):
        fake = write_vrt_disguise(tmp_path / name, private)
        with pytest.raises(BadSample, match="not a GeoTIFF") as info:
            with raster.open_raster(fake, allow_drivers=raster.BAND_FILE_DRIVERS):
                pass
        assert "VRTDataset" not in str(info.value)
    assert seen == []  # refused from its first bytes: GDAL never saw it
    folder = write_band_folder(tmp_path / "scene", scene_array(16, 16))
    next(folder.glob("*_B02.tif")).unlink()
    write_vrt_disguise(folder / "T31UDQ_20200101T000000_B02.jp2", private)
    with pytest.raises(BadSample, match="not a GeoTIFF"):
        with open_scene(folder):
            pass


def test_a_png_is_refused_where_only_geotiff_is_allowed(tmp_path):
    p = tmp_path / "mask.tif"
    with rasterio.open(p, "w", driver="PNG", height=4, width=4, count=1, dtype="uint8") as d:
        d.write(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(BadSample, match="is a PNG raster, expected GTiff"):
        raster.read_multiband(p, band_order=["B2"])
    assert raster.read_mask(p)[0].shape == (4, 4)  # masks may be PNG


def test_declared_huge_rasters_are_refused_before_reading(tmp_path, monkeypatch):
    huge = write_sparse_huge(tmp_path / "huge.tif")
    assert huge.stat().st_size < 64 << 20
    with pytest.raises(BadSample, match=r"declares 12 band\(s\) x 200000 x 200000 .* over the 4.0 GiB limit"):
        raster.read_multiband(huge, band_order=BANDS12)
    with pytest.raises(BadSample, match="over the 64.0 GiB limit"):
        with open_scene(huge):
            pass
    small = write_scene(tmp_path / "s.tif", scene_array(64, 64))
    monkeypatch.setenv(raster.MAX_RASTER_BYTES_ENV, str(64 * 64 * 12 * 2 - 1))
    with pytest.raises(BadSample, match="over the"):
        raster.read_multiband(small)
    monkeypatch.setenv(raster.MAX_RASTER_BYTES_ENV, str(64 * 64 * 12 * 2))
    assert raster.read_multiband(small).array.shape == (12, 64, 64)


def test_messages_never_quote_file_contents(tmp_path):
    secret = write_secret(tmp_path / "secret.tif")
    with pytest.raises(BadSample) as info:
        raster.read_multiband(secret, band_order=BANDS12)
    assert SECRET not in str(info.value) and "root:x" not in str(info.value)
    assert info.value.reason == "not_geotiff"


def test_jpeg2000_band_files_still_read(tmp_path):
    arr = scene_array(32, 32)
    folder = tmp_path / "safe"
    write_band_folder(folder, arr)
    b2 = next(folder.glob("*_B02.tif"))
    with rasterio.open(b2) as src:
        profile = src.profile
    b2.unlink()
    jp2 = folder / "T31UDQ_20200101T000000_B02.jp2"
    with rasterio.open(jp2, "w", driver="JP2OpenJPEG", width=32, height=32, count=1, dtype="uint16",
                       crs=CRS, transform=TRANSFORM, QUALITY=100, REVERSIBLE="YES") as dst:
        dst.write(arr[1], 1)
    with open_scene(folder) as scene:
        assert scene._datasets["B2"].driver == "JP2OpenJPEG"
        got = scene.read(rasterio.windows.Window(0, 0, 32, 32), ["B2", "B3"])
    np.testing.assert_array_equal(got[0], arr[1])
    assert profile["dtype"] == "uint16"


def test_tar_members_still_read_through_vsitar(tmp_path):
    import tarfile

    src = write_scene(tmp_path / "scene.tif", scene_array(16, 16))
    fake = write_vrt_disguise(tmp_path / "fake.tif", src)
    tar = tmp_path / "scenes.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(src, arcname="a/scene.tif")
        tf.add(fake, arcname="a/fake.tif")
    r = raster.read_multiband(raster.vsitar(tar, "a/scene.tif"))
    assert r.array.shape == (12, 16, 16)
    with pytest.raises(BadSample, match="not a GeoTIFF"):  # members are opened with the allowed drivers only
        raster.read_multiband(raster.vsitar(tar, "a/fake.tif"))


def test_predictions_are_cogs_with_the_plain_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        seg = Predictor.load(save_tiny(tmp_path / "m", "seg_vit_tiny_patch8_64", "segmentation", ["a", "b"]))
        src = write_scene(tmp_path / "s.tif", scene_array(200, 150))
        out = tmp_path / "map.tif"
        predict_scene(seg, src, out, probabilities=True, progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    with rasterio.open(out) as d:
        assert d.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert d.overviews(1) == [2] and d.block_shapes[0] == (256, 256)
        assert d.descriptions == ("class", "p(a)", "p(b)") and d.nodata == 255
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".map.tif")]  # no staging left
