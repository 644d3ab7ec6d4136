"""Scene and dataset embeddings to GeoParquet / GeoTIFF; model resolution."""
# ruff: noqa: F811  (pytest fixtures imported from tracking_helpers are redefined as arguments)

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
from inference_helpers import CRS, TRANSFORM, save_tiny, scene_array, write_scene
from tracking_helpers import empty_store_db, store, tiny_model_dir  # noqa: F401 (fixtures)
from rasterio.transform import Affine

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.data.sources import load_dataset
from spectralgpt.inference import Predictor, embed_dataset, embed_scene, resolve_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readers_fixtures import make_eurosat  # noqa: E402

T = 64


@pytest.fixture(scope="module")
def mae_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("m") / "mae", "mae_vit_tiny_patch8_64", "pretrain", ["none"])


def _ring(wkb: bytes) -> np.ndarray:
    order, gtype, nrings, npts = struct.unpack("<BIII", wkb[:13])
    assert (order, gtype, nrings, npts) == (1, 3, 1, 5)
    return np.frombuffer(wkb, "<f8", offset=13).reshape(5, 2)


def test_embed_scene_to_geoparquet_and_geotiff(tmp_path, mae_dir):
    p = Predictor.load(mae_dir)
    arr = scene_array(150, 130)
    arr[:, :64, :64] = 0  # the first tile is all nodata: left out
    src = write_scene(tmp_path / "s.tif", arr)
    out = embed_scene(p, src, tmp_path / "e.parquet", progress=False)
    t = pq.read_table(out)
    assert t.num_rows == 3 * 3 - 1 and t.schema.field("embedding").type.list_size == p.cfg.embed_dim
    geo = json.loads(t.schema.metadata[b"geo"])
    col = geo["columns"]["geometry"]
    assert geo["primary_column"] == "geometry" and col["encoding"] == "WKB" and col["geometry_types"] == ["Polygon"]
    assert rasterio.crs.CRS.from_user_input(json.dumps(col["crs"])) == rasterio.crs.CRS.from_string(CRS)
    rows = t.to_pylist()
    r = next(x for x in rows if (x["row"], x["col"]) == (1, 2))
    ring = _ring(r["geometry"])
    x0, y1 = TRANSFORM @ (128, 64)
    assert ring[:, 0].min() == x0 and ring[:, 1].max() == y1 and ring[:, 0].max() == x0 + 640
    tile = np.pad(arr[:, 64:128, 128:], ((0, 0), (0, 0), (0, 62)), mode="reflect")
    want = p.embed(p.prepare(tile)).numpy()[0]
    np.testing.assert_allclose(np.array(r["embedding"]), want, rtol=1e-4, atol=1e-5)
    assert col["bbox"][0] == TRANSFORM.c
    gpd = pytest.importorskip("geopandas")
    g = gpd.read_parquet(out)
    assert g.crs.to_epsg() == 32631 and len(g) == 8 and g.geometry.area.round().eq(640 * 640).all()
    # GeoTIFF: D bands on the tile grid, NaN where nodata
    tif = embed_scene(p, src, tmp_path / "e.tif", progress=False)
    with rasterio.open(tif) as d:
        assert d.count == p.cfg.embed_dim and d.shape == (3, 3) and d.crs == rasterio.crs.CRS.from_string(CRS)
        assert d.transform.almost_equals(TRANSFORM @ Affine.scale(T))
        e = d.read()
    assert np.isnan(e[:, 0, 0]).all()
    np.testing.assert_allclose(e[:, 1, 2], want, rtol=1e-4, atol=1e-5)


def test_embed_dataset_to_geoparquet(tmp_path, mae_dir):
    root = tmp_path / "eurosat"
    make_eurosat(root, per_class=("Forest", "River"), n=2, size=32)
    ds = load_dataset("eurosat", root)
    p = Predictor.load(mae_dir)
    out = embed_dataset(p, ds, tmp_path / "ds.parquet", batch_size=3, progress=False)
    t = pq.read_table(out)
    assert t.num_rows == len(ds) == 4
    assert t.column_names == ["id", "source", "split", "label", "geometry", "embedding"]
    assert sorted(t.column("label").to_pylist()) == sorted(int(s.label) for s in ds)
    geo = json.loads(t.schema.metadata[b"geo"])
    assert "crs" not in geo["columns"]["geometry"]  # OGC:CRS84 lon/lat, the default
    ring = _ring(t.column("geometry")[0].as_py())
    assert (np.abs(ring[:, 0]) <= 180).all() and (np.abs(ring[:, 1]) <= 90).all()
    s0 = ds[ds.ids.index(t.column("id")[0].as_py())]
    import torch.nn.functional as F
    x = F.interpolate(p.prepare(s0.image, s0.bands), size=(T, T), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(np.array(t.column("embedding")[0].as_py()), p.embed(x).numpy()[0], rtol=1e-4,
                               atol=1e-5)


def test_resolve_model_local_paths(tmp_path, mae_dir):
    assert resolve_model(mae_dir) == mae_dir
    assert resolve_model(mae_dir / "config.json") == mae_dir
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_model(tmp_path / "missing")


def test_resolve_model_registry_and_run_uris(store, tmp_path):
    """models:/ and runs:/ URIs against a real SQLite MLflow store, through the tracking package."""
    from spectralgpt.tracking import register

    version = register("classification", tiny_model_dir(tmp_path / "m"), {"overall_accuracy": 0.5}, "v1")
    folder = resolve_model("models:/spectralgpt-classification@challenger")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert resolve_model(f"models:/spectralgpt-classification/{version.version}").name == folder.name
    assert (resolve_model(f"runs:/{version.run_id}/model") / "config.json").is_file()


def test_cli_embed(tmp_path, mae_dir):
    from typer.testing import CliRunner

    from spectralgpt.cli import app

    src = write_scene(tmp_path / "s.tif", scene_array(64, 128), bands=PRETRAIN_BANDS)
    res = CliRunner().invoke(app, ["embed", "--model", str(mae_dir), "--input", str(src), "--output",
                                   str(tmp_path / "e.parquet"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 2
    res = CliRunner().invoke(app, ["embed", "--model", str(mae_dir), "--output", str(tmp_path / "x.parquet")])
    assert res.exit_code != 0 and not (tmp_path / "x.parquet").exists()
