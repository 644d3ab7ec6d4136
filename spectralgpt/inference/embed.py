"""Encoder embeddings: one vector per tile of a scene, or per sample of a dataset, to GeoParquet or GeoTIFF.

`embed_scene` cuts a scene into model-sized tiles on the regular tile grid of `spectralgpt.inference.scene`
(tiles every tile * (1 - overlap) pixels, the last reflect-padded where it overhangs) and writes

* ``.parquet``: GeoParquet 1.1, one row per tile: ``row``, ``col`` (tile indices), ``geometry`` (WKB polygon of
  the tile's footprint in the scene CRS), ``embedding`` (fixed-size list of float32, length D); all-nodata tiles
  are left out;
* ``.tif``: D float32 bands on the tile grid (one pixel per tile, transform of that grid), NaN = nodata.

`embed_dataset` embeds every sample of a `load_dataset(...)` dataset (resized to the model's input size when it
differs) to (Geo)Parquet: ``id``, ``source``, ``split``, ``label``, ``embedding``, and ``geometry`` (the sample's
footprint reprojected to longitude/latitude, OGC:CRS84, null when the sample is not georeferenced). Unreadable
samples are skipped with a warning and counted.

The GeoParquet ``geo`` metadata and the WKB are written here (no geopandas or shapely needed); geopandas reads the
files back.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
import torch
import torch.nn.functional as F
from rasterio.transform import Affine
from tqdm.auto import tqdm

from spectralgpt.bands import canonical_list, select_bands
from spectralgpt.data.sample import BadSample
from spectralgpt.inference.outputs import check_output
from spectralgpt.inference.predictor import Predictor
from spectralgpt.inference.scene import _read_tiles, _stride, scene_files, tile_grid
from spectralgpt.inference.scene_io import open_scene
from spectralgpt.io.atomic import atomic_path

log = logging.getLogger(__name__)

__all__ = ["embed_dataset", "embed_scene", "polygon_wkb", "write_geoparquet"]

GEOPARQUET_VERSION = "1.1.0"


def polygon_wkb(x0: float, y0: float, x1: float, y1: float) -> bytes:
    """WKB (little endian) of the axis-aligned rectangle (x0, y0)-(x1, y1), counter-clockwise exterior ring."""
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return struct.pack("<BIII", 1, 3, 1, 5) + b"".join(struct.pack("<dd", x, y) for x, y in ring)


def _polygon_from_ring(ring) -> bytes:
    return struct.pack("<BIII", 1, 3, 1, len(ring)) + b"".join(struct.pack("<dd", float(x), float(y)) for x, y in ring)


def _projjson(crs):
    if crs is None:
        return None
    try:
        return crs.to_dict(projjson=True)
    except Exception:  # noqa: BLE001 - a CRS PROJ cannot express as PROJJSON: fall back to WKT-less "unknown"
        log.warning("cannot express CRS %s as PROJJSON; the GeoParquet CRS is left undefined", crs)
        return None


def write_geoparquet(table: pa.Table, path, crs=None, geometry_types=("Polygon",), crs84: bool = False) -> Path:
    """Write `table` (with a WKB ``geometry`` column) atomically as GeoParquet 1.1 with its ``geo`` metadata.

    crs: the geometries' rasterio CRS (None with crs84=False: undefined); crs84=True: longitude/latitude (the
    GeoParquet default, so the key is omitted)."""
    path = Path(path)
    geoms = [g for g in table.column("geometry").to_pylist() if g is not None]
    bbox = None
    if geoms:
        xy = np.concatenate([np.frombuffer(g, dtype="<f8", offset=13).reshape(-1, 2) for g in geoms])
        bbox = [float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())]
    col = {"encoding": "WKB", "geometry_types": list(geometry_types)}
    if not crs84:
        col["crs"] = _projjson(crs)
    if bbox is not None:
        col["bbox"] = bbox
    geo = {"version": GEOPARQUET_VERSION, "primary_column": "geometry", "columns": {"geometry": col}}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": json.dumps(geo).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def _embedding_column(emb: np.ndarray) -> pa.Array:
    d = emb.shape[1] if emb.ndim == 2 else 0
    flat = pa.array(np.ascontiguousarray(emb, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, d)


def embed_scene(predictor: Predictor, input, output, overlap: float = 0.0, batch_size: int = 8,
                progress: bool = True, band_order=None, overwrite: bool = False) -> Path:
    """Encoder embedding (mean over tokens, D values) of every tile of a scene -> GeoParquet (.parquet) or a D-band
    float32 GeoTIFF on the tile grid (.tif). Returns the output path. The output is checked before any compute
    (not an input, not an existing file unless `overwrite`, writable; see `check_output`)."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".parquet", ".tif", ".tiff"):
        raise ValueError(f"embedding output must end in .parquet or .tif, got {output.name}")
    output = check_output(output, (input,), overwrite)
    size = predictor.size
    stride, _ = _stride(size, overlap)
    with open_scene(input, band_order) as scene:
        check_output(output, scene_files(scene), overwrite)
        bands = scene.require(predictor.bands)
        rows, cols, grid_transform = tile_grid(scene.height, scene.width, scene.transform, size, stride)
        D = predictor.cfg.embed_dim
        emb = np.full((len(rows), len(cols), D), np.nan, np.float32)
        bar = tqdm(total=len(rows) * len(cols), unit="tile", disable=not progress, desc=output.name)
        try:
            for i, r0 in enumerate(rows):
                tiles, masks = _read_tiles(scene, bands, r0, cols, size)
                valid = np.flatnonzero(~masks.all(axis=(1, 2)))
                for s in range(0, len(valid), batch_size):
                    sel = valid[s:s + batch_size]
                    emb[i, sel] = predictor.embed(predictor.prepare(tiles[sel])).cpu().numpy()
                bar.update(len(cols))
        finally:
            bar.close()
        crs, transform = scene.crs, scene.transform
    if suffix == ".parquet":
        rr, cc = np.nonzero(~np.isnan(emb[..., 0]))
        geoms = []
        for i, j in zip(rr, cc):
            x0, y0 = transform @ (cols[j], rows[i])
            x1, y1 = transform @ (cols[j] + size, rows[i] + size)
            geoms.append(polygon_wkb(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        table = pa.table({"row": pa.array(rr, pa.int32()), "col": pa.array(cc, pa.int32()),
                          "geometry": pa.array(geoms, pa.binary()),
                          "embedding": _embedding_column(emb[rr, cc].reshape(len(rr), D))})
        write_geoparquet(table, output, crs)
    else:
        profile = dict(driver="GTiff", dtype="float32", count=D, height=len(rows), width=len(cols), crs=crs,
                       transform=grid_transform, nodata=float("nan"), compress="deflate", tiled=True,
                       blockxsize=256, blockysize=256, BIGTIFF="IF_SAFER", interleave="band")
        with atomic_path(output) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            dst.write(np.moveaxis(emb, -1, 0))
    log.info("wrote %s: %d x %d tiles, %d-dimensional embeddings", output, len(rows), len(cols), D)
    return output


def _label_value(label):
    """A label as a Parquet-friendly value: int, list of floats (multi-hot), or None (masks, unlabelled)."""
    if label is None:
        return None
    a = np.asarray(label)
    if a.ndim == 0:
        return int(a) if np.issubdtype(a.dtype, np.integer) else float(a)
    if a.ndim == 1:
        return [float(v) for v in a]
    return None  # dense masks are not stored with embeddings


def _footprint_lonlat(sample) -> bytes | None:
    if sample.crs is None or sample.transform is None:
        return None
    from rasterio.warp import transform_geom

    h, w = sample.image.shape[-2:]
    t: Affine = sample.transform
    corners = [t @ (0, 0), t @ (w, 0), t @ (w, h), t @ (0, h), t @ (0, 0)]
    geom = transform_geom(sample.crs, "OGC:CRS84", {"type": "Polygon", "coordinates": [corners]})
    return _polygon_from_ring(geom["coordinates"][0])


def embed_dataset(predictor: Predictor, dataset, output, batch_size: int = 16, progress: bool = True,
                  overwrite: bool = False) -> Path:
    """Embedding of every readable sample of a `load_dataset(...)` dataset -> (Geo)Parquet (see module docstring).
    An existing output is replaced only with `overwrite`."""
    output = check_output(output, (), overwrite)
    size = predictor.size
    ids, sources, splits, labels, geoms, embs = [], [], [], [], [], []
    pending: list = []
    bad = 0

    def flush():
        if not pending:
            return
        x = torch.cat([predictor.prepare(select_bands(s.image, canonical_list(s.bands), predictor.bands))
                       for s in pending])
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        embs.append(predictor.embed(x).cpu().numpy())
        for s in pending:
            ids.append(s.id)
            sources.append(s.source)
            splits.append(s.split)
            labels.append(_label_value(s.label))
            geoms.append(_footprint_lonlat(s))
        pending.clear()

    for i in tqdm(range(len(dataset)), unit="sample", disable=not progress, desc=output.name):
        try:
            sample = dataset[i]
            missing = [b for b in predictor.bands if b not in canonical_list(sample.bands)]
            if missing:
                raise BadSample("missing_bands", f"sample lacks band(s) {', '.join(missing)} that the model needs",
                                sample.source, sample.id)
        except BadSample as e:
            bad += 1
            log.warning("skipping sample %d: %s", i, e)
            continue
        pending.append(sample)
        if len(pending) == batch_size:
            flush()
    flush()
    emb = np.concatenate(embs) if embs else np.zeros((0, predictor.cfg.embed_dim), np.float32)
    kinds = {type(v) for v in labels if v is not None}
    label_type = pa.int64() if kinds == {int} else pa.list_(pa.float32()) if kinds == {list} else pa.float64() \
        if kinds <= {int, float} and kinds else pa.null()
    table = pa.table({"id": pa.array(ids, pa.string()), "source": pa.array(sources, pa.string()),
                      "split": pa.array(splits, pa.string()),
                      "label": pa.array(labels if label_type != pa.null() else [None] * len(ids), label_type),
                      "geometry": pa.array(geoms, pa.binary()), "embedding": _embedding_column(emb)})
    if any(g is not None for g in geoms):
        write_geoparquet(table, output, crs84=True)
    else:
        with atomic_path(output) as tmp:
            pq.write_table(table.drop(["geometry"]), tmp, compression="zstd")
    log.info("wrote %s: %d embeddings (%d unreadable samples skipped)", output, len(ids), bad)
    return output
