"""Whole-scene prediction: sliding-window tiles, batched through the model, blended without seams, to GeoTIFF.

How a scene of any size is predicted with bounded memory
    The scene is cut into tiles of the model's input size; tile rows ("strips") are read one window at a time
    (the next strip is read in a background thread while the model runs), normalised with the recipe stored with
    the model, and batched through it. Dense models (segmentation, change detection) overlap their tiles by
    `overlap` and blend them: each tile's probabilities are weighted by a separable window that is 1 in the tile's
    interior and falls off with a cosine ramp across the overlap (two overlapping ramps sum to 1), accumulated,
    and divided by the weight sum, so there are no seams, and away from the overlaps a pixel is exactly the
    prediction of the one tile that covers it. The last tile of a row/column is shifted back to end at the scene's
    edge; a scene smaller than a tile is reflect-padded and the output cropped back.

    Only the rows that later strips can still touch are held in memory (at most 256 + tile rows x width x
    classes, float32); every finished 256-row block is stored and the GeoTIFF is assembled from the blocks at
    the end with windowed writes.

Outputs (Cloud-Optimized GeoTIFF: uint8, nodata 255, deflate, 256 x 256 tiles, overviews; the input's CRS and
transform)
    segmentation: band 1 = class index; change detection: band 1 = change map (class index, 1 = change);
    `probabilities=True` adds one band per class with p * 254 rounded (band scale 1/254, descriptions p(name)).
    Classifiers: one value per tile on a coarser grid (cell = tile stride, centred on its tile), with that grid's
    transform; multi-label classifiers write one 0/1 band per class (described by its name: present where the
    probability reaches the threshold saved with the model, as evaluation and the MLflow model decide). Pixels (tiles, for classifiers) where every input band equals the nodata value (the file's, else
    0) -- of either date for change detection -- are nodata in the output.

Outputs are checked before any compute
    An output that is one of the inputs (same real path, also the second date and band files) is refused; an
    existing output is replaced only with `overwrite=True`; a folder or an unwritable location fails at once.

Atomic and resumable
    The finished blocks are assembled into a temporary GeoTIFF, which GDAL's COG driver copies (overviews
    computed by the driver, laid out after the header as the COG layout requires) to a temporary name beside
    OUT, renamed when complete. Progress lives in
    ``OUT.partial/`` (state.json + finished blocks + the blending accumulator at the last checkpoint, each
    written atomically); a rerun with the same model, inputs and options continues from there, and the folder is
    removed on success.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import torch
from rasterio.transform import Affine
from rasterio.windows import Window
from tqdm.auto import tqdm

from spectralgpt.inference import colormap
from spectralgpt.inference.outputs import OutputError, check_output
from spectralgpt.inference.predictor import Predictor
from spectralgpt.inference.scene_io import Scene, SceneError, check_same_grid, open_scene
from spectralgpt.io import s2offset
from spectralgpt.io.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["OutputError", "SceneResult", "SceneError", "predict_scene", "tile_starts", "blend_window"]

NODATA = 255
PROB_SCALE = 254
BLOCK = 256  # output rows per stored block (= the GeoTIFF's tile height)
STATE_VERSION = 1


@dataclass
class SceneResult:
    """What `predict_scene` did."""

    output: Path
    height: int
    width: int
    tiles_total: int
    tiles_computed: int  # run through the model in this call (resumed and all-nodata tiles excluded)
    tiles_skipped: int  # all-nodata tiles never run
    resumed: bool


# ---------------------------------------------------------------------------------------------- tiling


def tile_starts(n: int, size: int, stride: int, regular: bool = False) -> list[int]:
    """Tile origins along an axis of length n. Default: every `stride`, the last shifted back to end at n (one tile
    at 0 when n <= size). regular=True: every `stride` until the scene is covered (the last may overhang)."""
    if n <= size:
        return [0]
    if regular:
        return list(range(0, n - size + stride, stride))
    s = list(range(0, n - size + 1, stride))
    if s[-1] != n - size:
        s.append(n - size)
    return s


def blend_window(size: int, overlap_px: int) -> np.ndarray:
    """1-D blending weights: 1 inside, a cosine ramp over `overlap_px` at both ends (ramps of neighbours sum to 1)."""
    w = np.ones(size, dtype=np.float32)
    o = min(overlap_px, size // 2)
    if o > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(o) + 0.5) / o)
        w[:o] = ramp
        w[size - o:] = ramp[::-1]
    return w


def _stride(size: int, overlap: float) -> tuple[int, int]:
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    overlap_px = int(round(overlap * size))
    return size - overlap_px, overlap_px


def _read_tiles(scene: Scene, bands, r0: int, cols: list[int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one strip (rows r0..r0+size, clipped to the scene) and cut it into tiles (N, C, size, size), reflect-
    padded where the scene ends; plus each tile's nodata mask (N, size, size) (padding counts as nodata)."""
    h = min(size, scene.height - r0)
    strip = scene.read(Window(0, r0, scene.width, h), bands)
    nod = scene.nodata_mask(strip)
    tiles = np.empty((len(cols), strip.shape[0], size, size), dtype=strip.dtype)
    masks = np.ones((len(cols), size, size), dtype=bool)
    for i, c in enumerate(cols):
        t = strip[:, :, c:c + size]
        masks[i, :t.shape[1], :t.shape[2]] = nod[:, c:c + size]
        if t.shape[1:] != (size, size):
            t = np.pad(t, ((0, 0), (0, size - t.shape[1]), (0, size - t.shape[2])), mode="reflect")
        tiles[i] = t
    return tiles, masks


# ----------------------------------------------------------------------------------------- the sidecar


class _Sidecar:
    """OUT.partial/: state.json (fingerprint, progress) and .npy arrays, each written atomically."""

    def __init__(self, output: Path, fingerprint: str, resume: bool):
        self.dir = output.with_name(output.name + ".partial")
        self.fingerprint = fingerprint
        self.state: dict = {}
        if self.dir.exists():
            state = self._load_state()
            if resume and state.get("fingerprint") == fingerprint and state.get("version") == STATE_VERSION:
                self.state = state
                log.info("resuming %s from %s (%d tile rows done)", output, self.dir, state.get("rows_done", 0))
            else:
                if resume:
                    log.warning("discarding %s: it was made by another model, input or options", self.dir)
                shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _load_state(self) -> dict:
        try:
            return json.loads((self.dir / "state.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def save_array(self, name: str, a: np.ndarray) -> None:
        with atomic_path(self.dir / name) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, a)

    def load_array(self, name: str) -> np.ndarray:
        return np.load(self.dir / name)

    def commit(self, **state) -> None:
        self.state = {"version": STATE_VERSION, "fingerprint": self.fingerprint, **state}
        atomic_write_text(self.dir / "state.json", json.dumps(self.state))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _fingerprint(predictor: Predictor, scenes: list[Scene], **options) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(predictor.meta, sort_keys=True, default=str).encode())
    for t in predictor.model.state_dict().values():
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    for s in scenes:
        st = os.stat(s.path) if os.path.exists(s.path) else None
        h.update(json.dumps([os.path.abspath(s.path), st and st.st_size, st and st.st_mtime_ns,
                             s.grid.shape, list(s.transform)[:6], s.bands]).encode())
    h.update(json.dumps(options, sort_keys=True).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- writing


def _overview_count(height: int, width: int) -> int:
    """Overview levels (x2 each) down to about 64 pixels on the long side."""
    n = 0
    while max(height, width) // (2 ** (n + 1)) >= 64 or n == 0 and max(height, width) >= 16:
        n += 1
    return n


def offset_tags(scene: Scene, scene2: Scene | None = None) -> dict[str, str]:
    """GeoTIFF tags recording the Sentinel-2 DN offset subtracted from each input (``none`` when nothing was)."""
    out = {}
    for key, sc in (("SPECTRALGPT_DN_OFFSET", scene), ("SPECTRALGPT_DN_OFFSET_INPUT2", scene2)):
        if sc is not None:
            h = sc.harmonization
            out[key] = json.dumps({"offset": s2offset.summary(h), "source": h.get("metadata") or h["source"],
                                   "baseline": h.get("baseline")})
    return out


def _write_geotiff(output: Path, blocks, height: int, width: int, count: int, crs, transform: Affine,
                   descriptions: list[str], prob_bands: int, tags: dict | None = None,
                   class_names: list[str] | None = None) -> None:
    """Assemble the output from (row offset, (count, h, width) uint8) blocks into a staging GeoTIFF, then let
    GDAL's COG driver copy it (with its overviews) to a temporary name beside OUT, renamed to OUT. With
    `class_names`, band 1 gets the class colours and names (`spectralgpt.inference.colormap`)."""
    profile = dict(driver="GTiff", dtype="uint8", count=count, height=height, width=width, crs=crs,
                   transform=transform, nodata=NODATA, compress="deflate", zlevel=1, tiled=True,
                   blockxsize=BLOCK, blockysize=BLOCK, BIGTIFF="IF_SAFER")
    overviews = _overview_count(height, width)
    cog = dict(driver="COG", COMPRESS="DEFLATE", PREDICTOR="2", BLOCKSIZE=str(BLOCK), BIGTIFF="IF_SAFER",
               RESAMPLING="NEAREST", OVERVIEW_RESAMPLING="NEAREST")
    if overviews:
        cog["OVERVIEW_COUNT"] = str(overviews)
    else:
        cog["OVERVIEWS"] = "NONE"
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as staging:
        stage = Path(staging) / "stage.tif"
        with rasterio.open(stage, "w", **profile) as dst:
            for r0, block in blocks:
                dst.write(block, window=Window(0, r0, width, block.shape[1]))
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
            if tags:
                dst.update_tags(**tags)
            if class_names and count == 1:  # a palette only survives in a single-band file
                colormap.write_colormap(dst, class_names)
            if prob_bands:
                dst.scales = [1.0] * (count - prob_bands) + [1.0 / PROB_SCALE] * prob_bands
        with atomic_path(output) as tmp:
            rasterio.shutil.copy(stage, tmp, **cog)
    if class_names:
        colormap.write_pam(output, class_names, count)


def _to_uint8(predictor: Predictor, prob: torch.Tensor, nodata: np.ndarray, with_probs: bool) -> np.ndarray:
    """(K, h, w) probabilities (on any device) + (h, w) nodata mask -> (D [+K], h, w) uint8: the task's decision
    bands (the class index; one 0/1 band per class for multi-label models, with their saved thresholds), then
    the scaled probabilities. The reductions run where `prob` is, only uint8 comes back."""
    out = predictor.task.decision_map(prob, predictor.extra)
    if with_probs:
        out = torch.cat([out.to(prob.device), torch.round(prob.clamp(0, 1) * PROB_SCALE).to(torch.uint8)])
    out = out.cpu().numpy()
    out[:, nodata] = NODATA
    return out


# ------------------------------------------------------------------------------------------ prediction


def _batches(n: int, batch_size: int):
    for i in range(0, n, batch_size):
        yield slice(i, min(n, i + batch_size))


def _run_tiles(predictor: Predictor, tiles, tiles2, valid: np.ndarray, batch_size: int, bar) -> dict[int, torch.Tensor]:
    """Probabilities of the tiles with any valid pixel, batched: {tile index: (K, ...) float32 on the
    predictor's device}."""
    idx = np.flatnonzero(valid)
    out: dict[int, torch.Tensor] = {}
    for sl in _batches(len(idx), batch_size):
        sel = idx[sl]
        x = predictor.prepare(tiles[sel])
        x2 = None if tiles2 is None else predictor.prepare(tiles2[sel])
        p = predictor.forward(x, x2)
        for i, k in enumerate(sel):
            out[int(k)] = p[i]
        bar.update(len(sel))
    bar.update(int((~valid).sum()))
    return out


def predict_scene(predictor: Predictor, input, output, input2=None, overlap: float = 0.25, batch_size: int = 8,
                  probabilities: bool = False, resume: bool = True, progress: bool = True, band_order=None,
                  callback=None, overwrite: bool = False, offset="auto") -> SceneResult:
    """Predict a whole scene to a GeoTIFF (see the module docstring).

    predictor: a loaded `Predictor` (segmentation, change or classifier model).
    input: a multi-band GeoTIFF, a folder of single-band files (``*_B02.tif``, ``*_B8A.jp2``, ...) or a .tar of
        them; input2: the second date for change detection (same CRS and size).
    overlap: fraction of a tile shared with its neighbours, in [0, 1) (classifiers: tiles step by
        tile * (1 - overlap)). probabilities: add per-class probability bands (uint8, p * 254).
    resume: continue from ``OUT.partial/`` when a previous run with the same model, inputs and options was
        interrupted. band_order: band names of a multi-band file without band descriptions.
    callback: called as callback(rows_done, rows_total) after each tile row (progress hooks, tests).
    overwrite: replace an existing OUT (otherwise `OutputError`); an OUT that is an input is always refused.
    offset: Sentinel-2 baseline 04.00 DN offset subtracted from the inputs ("auto": from a SAFE product's
        metadata; an integer for bare GeoTIFFs), recorded in OUT's tags (``SPECTRALGPT_DN_OFFSET``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    task = predictor.task
    if not task.predicts:
        raise ValueError("an MAE pretraining model has no prediction head; use embed_scene for its embeddings")
    if task.dates == 2 and input2 is None:
        raise ValueError("a change-detection model needs two dates: pass input2")
    if task.dates == 1 and input2 is not None:
        raise ValueError(f"a {task.name} model takes one date; input2 is only for change detection")
    output = check_output(output, (input, input2), overwrite)
    size = predictor.size
    stride, overlap_px = _stride(size, overlap)
    with open_scene(input, band_order, offset) as scene, \
            (open_scene(input2, band_order, offset) if input2 is not None else _null()) as scene2:
        check_output(output, scene_files(scene) + scene_files(scene2), overwrite)
        bands = scene.require(predictor.bands)
        if scene2 is not None:
            scene2.require(predictor.bands)
            check_same_grid(scene, scene2)
        fp = _fingerprint(predictor, [s for s in (scene, scene2) if s is not None], overlap=overlap,
                          probabilities=bool(probabilities), size=size, band_order=band_order,
                          offset=offset_tags(scene, scene2))
        sidecar = _Sidecar(output, fp, resume)
        args = (predictor, scene, scene2, bands, output, size, stride, overlap_px, batch_size, bool(probabilities),
                progress, sidecar, callback)
        result = _predict_dense(*args) if task.dense else _predict_tiles(*args)
    sidecar.remove()
    log.info("wrote %s (%d x %d): %d tiles, %d computed, %d all-nodata skipped%s", output, result.height,
             result.width, result.tiles_total, result.tiles_computed, result.tiles_skipped,
             " (resumed)" if result.resumed else "")
    return result


def scene_files(scene: Scene | None) -> list[str]:
    """The files a scene reads (its multi-band file or every band file); [] for None."""
    return [] if scene is None else [src.name for src in scene._datasets.values()]


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _strip_reader(scene, scene2, bands, starts, cols, size):
    """Iterator over (r0, tiles, tiles2, nodata masks) of the strips at `starts`, reading one strip ahead."""
    def read(r0):
        t, m = _read_tiles(scene, bands, r0, cols, size)
        t2 = None
        if scene2 is not None:
            t2, m2 = _read_tiles(scene2, bands, r0, cols, size)
            m = m | m2
        return r0, t, t2, m

    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(read, starts[0]) if starts else None
        for k in range(len(starts)):
            cur = fut.result()
            fut = pool.submit(read, starts[k + 1]) if k + 1 < len(starts) else None
            yield cur


def _class_names(predictor: Predictor) -> list[str]:
    return list(predictor.class_names or [str(i) for i in range(predictor.cfg.num_classes)])


def _palette(predictor: Predictor) -> list[str] | None:
    """Class names for band 1's colour table, when band 1 is a class index (not per-class 0/1 bands)."""
    return None if predictor.task.multilabel else _class_names(predictor)


def _descriptions(predictor: Predictor, probabilities: bool) -> list[str]:
    names = _class_names(predictor)
    return predictor.task.map_bands(names) + ([f"p({n})" for n in names] if probabilities else [])


def _predict_dense(predictor, scene, scene2, bands, output, size, stride, overlap_px, batch_size, probabilities,
                   progress, sidecar, callback) -> SceneResult:
    H, W, K = scene.height, scene.width, predictor.cfg.num_classes
    dev = predictor.device  # the blending accumulator lives where the probabilities are computed
    rows, cols = tile_starts(H, size, stride), tile_starts(W, size, stride)
    win1 = torch.from_numpy(blend_window(size, overlap_px)).to(dev)
    weight = torch.outer(win1, win1)
    n_total = len(rows) * len(cols)
    st = sidecar.state
    done, a0 = st.get("rows_done", 0), st.get("a0", 0)
    n_blocks = st.get("blocks", 0)
    if done:
        acc, wsum = (torch.from_numpy(sidecar.load_array(n)).to(dev) for n in ("acc.npy", "wsum.npy"))
        nod = sidecar.load_array("nodata.npy")
    else:
        acc = torch.zeros((K, 0, W), dtype=torch.float32, device=dev)
        wsum, nod = torch.zeros((0, W), dtype=torch.float32, device=dev), np.zeros((0, W), bool)
    computed = skipped = 0
    bar = tqdm(total=n_total, initial=done * len(cols), unit="tile", disable=not progress, desc=output.name)
    try:
        for k, (r0, tiles, tiles2, masks) in enumerate(_strip_reader(scene, scene2, bands, rows[done:], cols, size),
                                                       start=done):
            r1 = min(r0 + size, H)
            if r1 - a0 > acc.shape[1]:  # grow the accumulator down to this strip's last row
                grow = r1 - a0 - acc.shape[1]
                acc = torch.cat([acc, acc.new_zeros((K, grow, W))], dim=1)
                wsum = torch.cat([wsum, wsum.new_zeros((grow, W))])
                nod = np.concatenate([nod, np.ones((grow, W), bool)])
            valid = ~masks.all(axis=(1, 2))
            probs = _run_tiles(predictor, tiles, tiles2, valid, batch_size, bar)
            computed += len(probs)
            skipped += int((~valid).sum())
            h = r1 - r0
            for i, c in enumerate(cols):
                c1 = min(c + size, W)
                w = c1 - c
                nod[r0 - a0:r1 - a0, c:c1] = masks[i, :h, :w]  # same value from every tile covering a pixel
                if i in probs:
                    wt = weight[:h, :w]
                    acc[:, r0 - a0:r1 - a0, c:c1] += probs[i][:, :h, :w] * wt
                    wsum[r0 - a0:r1 - a0, c:c1] += wt
            final = rows[k + 1] if k + 1 < len(rows) else H  # rows above the next strip are finished
            wrote = False
            while final - a0 >= BLOCK or (final == H and a0 < H):
                b1 = min(a0 + BLOCK, H)
                n = b1 - a0
                prob = acc[:, :n] / wsum[:n].clamp_min(1e-12)
                sidecar.save_array(f"block_{n_blocks:05d}.npy", _to_uint8(predictor, prob, nod[:n], probabilities))
                acc, wsum, nod = acc[:, n:].clone(), wsum[n:].clone(), nod[n:].copy()
                a0, n_blocks, wrote = b1, n_blocks + 1, True
            if wrote or k + 1 == len(rows):
                for name, a in (("acc.npy", acc.cpu().numpy()), ("wsum.npy", wsum.cpu().numpy()), ("nodata.npy", nod)):
                    sidecar.save_array(name, a)
                sidecar.commit(rows_done=k + 1, a0=a0, blocks=n_blocks)
            if callback is not None:
                callback(k + 1, len(rows))
    finally:
        bar.close()

    def blocks():
        for b in range(n_blocks):
            yield b * BLOCK, sidecar.load_array(f"block_{b:05d}.npy")

    descriptions = _descriptions(predictor, probabilities)
    _write_geotiff(output, blocks(), H, W, len(descriptions), scene.crs, scene.transform, descriptions,
                   K if probabilities else 0, tags=offset_tags(scene, scene2), class_names=_palette(predictor))
    return SceneResult(output, H, W, n_total, computed, skipped, bool(done))


def tile_grid(height: int, width: int, transform: Affine, size: int, stride: int):
    """The coarse grid of per-tile values: (row starts, col starts, transform). Tiles start every `stride` pixels
    (the last may overhang the scene and is reflect-padded); cell (i, j) is the stride x stride square centred in
    tile (i, j)."""
    rows = tile_starts(height, size, stride, regular=True)
    cols = tile_starts(width, size, stride, regular=True)
    off = (size - stride) / 2
    return rows, cols, transform @ Affine.translation(off, off) @ Affine.scale(stride)


def _predict_tiles(predictor, scene, scene2, bands, output, size, stride, overlap_px, batch_size, probabilities,
                   progress, sidecar, callback) -> SceneResult:
    """Scene classifiers: one prediction per tile on the coarse tile grid."""
    K = predictor.cfg.num_classes
    rows, cols, transform = tile_grid(scene.height, scene.width, scene.transform, size, stride)
    n_total = len(rows) * len(cols)
    done = sidecar.state.get("rows_done", 0)
    if done:
        prob, nod = sidecar.load_array("prob.npy"), sidecar.load_array("nodata.npy")
    else:
        prob = np.zeros((K, len(rows), len(cols)), np.float32)
        nod = np.ones((len(rows), len(cols)), bool)
    computed = skipped = 0
    bar = tqdm(total=n_total, initial=done * len(cols), unit="tile", disable=not progress, desc=output.name)
    try:
        for k, (_, tiles, tiles2, masks) in enumerate(_strip_reader(scene, scene2, bands, rows[done:], cols, size),
                                                      start=done):
            valid = ~masks.all(axis=(1, 2))
            probs = _run_tiles(predictor, tiles, tiles2, valid, batch_size, bar)
            computed += len(probs)
            skipped += int((~valid).sum())
            for i, p in probs.items():
                prob[:, k, i] = p.cpu().numpy()
                nod[k, i] = False
            sidecar.save_array("prob.npy", prob)
            sidecar.save_array("nodata.npy", nod)
            sidecar.commit(rows_done=k + 1)
            if callback is not None:
                callback(k + 1, len(rows))
    finally:
        bar.close()
    out = _to_uint8(predictor, torch.from_numpy(prob), nod, probabilities)
    _write_geotiff(output, [(0, out)], len(rows), len(cols), out.shape[0], scene.crs, transform,
                   _descriptions(predictor, probabilities), K if probabilities else 0,
                   tags=offset_tags(scene, scene2), class_names=_palette(predictor))
    return SceneResult(output, len(rows), len(cols), n_total, computed, skipped, bool(done))
