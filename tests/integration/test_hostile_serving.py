"""The served model's input policy against hostile requests: paths outside the allowed roots, URLs, GDAL virtual
paths, disguised and oversized files, NaN, wrong band counts, huge batches. Each is refused with a client error
(MlflowException INVALID_PARAMETER_VALUE -> HTTP 400) whose message names the problem, and nothing is read or
fetched (a loopback HTTP server records that no request reached it; rasterio.open is watched)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import rasterio
from hostile_helpers import SECRET, loopback_server, url_paths, write_secret, write_sparse_huge, write_vrt_disguise
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE, ErrorCode
from tracking_helpers import reflectance, tiny_model_dir

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.tracking.pyfunc import MAX_BATCH_ENV, MAX_PIXELS_ENV, ROOTS_ENV, SpectralGPTPyfunc


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tiny_model_dir(tmp_path_factory.mktemp("model") / "m", "classification")
    m = SpectralGPTPyfunc()
    m.load_context(SimpleNamespace(artifacts={"model": str(folder)}))
    return m


@pytest.fixture
def opened(monkeypatch):
    """Every path rasterio.open is asked to open for reading during the test."""
    seen = []
    real = rasterio.open

    def spy(path, mode="r", *args, **kwargs):
        if mode == "r":
            seen.append(str(path))
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy)
    return seen


def _geotiff(path, size=64):
    arr = reflectance(1, size=size)[0].astype("uint16")
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=12, dtype="uint16",
                       crs="EPSG:32632", transform=rasterio.transform.from_origin(500000, 5000000, 10, 10)) as d:
        d.write(arr)
        for i, b in enumerate(PRETRAIN_BANDS, 1):
            d.set_band_description(i, b)
    return str(path)


def _refused(model, model_input, match, params=None):
    with pytest.raises(MlflowException, match=match) as info:
        model.predict(None, model_input, params)
    assert info.value.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE)
    assert info.value.get_http_status_code() == 400
    assert SECRET not in info.value.message and "root:x" not in info.value.message
    return info.value.message


def test_paths_are_refused_when_the_server_names_no_roots(model, tmp_path, monkeypatch, opened):
    monkeypatch.delenv(ROOTS_ENV, raising=False)
    tif = _geotiff(tmp_path / "a.tif")
    _refused(model, pd.DataFrame({"path": [tif]}), "path inputs are disabled")
    assert opened == []


def test_paths_outside_the_roots_and_symlinks_out_are_refused_unread(model, tmp_path, monkeypatch, opened):
    root = tmp_path / "root"
    root.mkdir()
    secret = write_secret(tmp_path / "secret.txt")
    (root / "link.tif").symlink_to(secret)
    monkeypatch.setenv(ROOTS_ENV, str(root))
    for path in ["/etc/passwd", str(secret), str(root / "link.tif"), str(root / ".." / "secret.txt"),
                 f"{root}-sibling/x.tif"]:
        _refused(model, pd.DataFrame({"path": [path]}), "outside the server's allowed roots")
    assert opened == []
    # one bad row refuses the whole table before any row is read
    good = _geotiff(root / "good.tif")
    _refused(model, pd.DataFrame({"path": [good, "/etc/passwd"]}), "outside")
    assert opened == []


def test_a_non_raster_inside_the_roots_is_refused_without_quoting_it(model, tmp_path, monkeypatch, opened):
    secret = write_secret(tmp_path / "notes.tif")
    monkeypatch.setenv(ROOTS_ENV, str(tmp_path))
    msg = _refused(model, pd.DataFrame({"path": [str(secret)]}), "not a GeoTIFF")
    assert "SECRET" not in msg
    assert opened == []  # refused from its signature: GDAL never parsed it


def test_urls_and_gdal_virtual_paths_are_never_fetched(model, monkeypatch, opened):
    monkeypatch.setenv(ROOTS_ENV, "/")  # even a server that allows every local file
    with loopback_server() as (base, hits):
        for path in url_paths(base):
            _refused(model, pd.DataFrame({"path": [path]}), "URLs and GDAL virtual paths are not read")
        assert hits == []
    assert opened == []


def test_disguised_vrt_and_declared_huge_files_are_refused(model, tmp_path, monkeypatch):
    monkeypatch.setenv(ROOTS_ENV, str(tmp_path))
    target = _geotiff(tmp_path / "private.tif")
    vrt = write_vrt_disguise(tmp_path / "scene.tif", target)
    _refused(model, pd.DataFrame({"path": [str(vrt)]}), "not a GeoTIFF")
    huge = write_sparse_huge(tmp_path / "huge.tif")
    _refused(model, pd.DataFrame({"path": [str(huge)]}), "over the .* GiB limit")


def test_bad_arrays_are_client_errors(model, monkeypatch):
    monkeypatch.setenv(MAX_BATCH_ENV, "4")
    monkeypatch.setenv(MAX_PIXELS_ENV, str(3 * 64 * 64))
    x = reflectance(2)
    _refused(model, x[:, :10], "10 bands, but the model's bands")
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan
    _refused(model, nan, "NaN or infinite")
    _refused(model, reflectance(5), "5 images in one request, over this server's limit of 4")
    _refused(model, reflectance(1, size=128), "pixels in one request, over this server's limit")
    _refused(model, reflectance(1, size=32), "smaller than the model's 64x64")
    _refused(model, np.array([["a", "b"]]), "expected numeric")
    _refused(model, {"image": x, "bands": ["B1", "B99"]}, "bands")
    _refused(model, {"image": x, "bands": list(PRETRAIN_BANDS[:11])}, "12 bands, but the `bands` given name 11")
    _refused(model, {"picture": x}, "needs an `image` entry")
    _refused(model, x, "batch_size must be >= 1", params={"batch_size": -1})
    assert model.predict(None, x, {"batch_size": 1000}).shape == (2, 3)  # lowered to the server's limit
    _refused(model, pd.DataFrame({"file": ["a"]}), "needs a `path` column")
    assert model.predict(None, x).shape == (2, 3)  # still answering


def test_unexpected_failures_are_generic_server_errors(model, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("internal detail /secret/path")

    monkeypatch.setattr(model.predictor, "predict", boom)
    with pytest.raises(MlflowException) as info:
        model.predict(None, reflectance(1))
    assert info.value.error_code == ErrorCode.Name(INTERNAL_ERROR)
    assert "secret" not in info.value.message
