"""Whole-scene prediction on real GeoTIFFs written in tmp_path, with tiny random-weight models."""

from __future__ import annotations

import copy
import tarfile

import numpy as np
import pytest
import rasterio
import torch
from inference_helpers import (CRS, TRANSFORM, read, save_tiny, scene_array, tile_probs, write_band_folder,
                               write_scene)
from rasterio.transform import Affine

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.data.sample import BadSample
from spectralgpt.inference import Predictor, SceneError, predict_scene
from spectralgpt.inference.scene import NODATA, PROB_SCALE, blend_window
from spectralgpt.inference.scene_io import open_scene
from spectralgpt.io.raster import read_band_files
from spectralgpt.models import save_model

T = 64


@pytest.fixture(scope="module")
def seg(tmp_path_factory) -> Predictor:
    d = save_tiny(tmp_path_factory.mktemp("m") / "seg", "seg_vit_tiny_patch8_64", "segmentation", ["a", "b", "c"])
    return Predictor.load(d)


@pytest.fixture(scope="module")
def cd(tmp_path_factory) -> Predictor:
    d = save_tiny(tmp_path_factory.mktemp("m") / "cd", "cd_vit_tiny_patch8_64", "change", ["no change", "change"])
    return Predictor.load(d)


@pytest.fixture(scope="module")
def cls(tmp_path_factory) -> Predictor:
    d = save_tiny(tmp_path_factory.mktemp("m") / "cls", "vit_tiny_patch8_64", "classification", ["x", "y", "z", "w"])
    return Predictor.load(d)


def _georef_matches(profile, h, w, transform=TRANSFORM):
    assert profile["crs"] == rasterio.crs.CRS.from_string(CRS)
    assert profile["transform"].almost_equals(transform)
    assert (profile["height"], profile["width"]) == (h, w)
    assert profile["nodata"] == NODATA and profile["dtype"] == "uint8"
    assert profile["compress"] == "deflate" and profile["tiled"] and profile["blockxsize"] == 256


def test_overlap0_each_tile_is_the_model_on_that_tile(tmp_path, seg):
    arr = scene_array(2 * T, 3 * T)
    arr[:, 5:20, 7:30] = 0  # a nodata hole
    src = write_scene(tmp_path / "s.tif", arr)
    r = predict_scene(seg, src, tmp_path / "out.tif", overlap=0.0, probabilities=True, progress=False)
    assert (r.tiles_total, r.tiles_computed) == (6, 6)
    out, profile, desc = read(tmp_path / "out.tif")
    _georef_matches(profile, 2 * T, 3 * T)
    assert desc == ("class", "p(a)", "p(b)", "p(c)")
    with rasterio.open(tmp_path / "out.tif") as d:
        assert d.overviews(1) == [2]
    for i in range(2):
        for j in range(3):
            p = tile_probs(seg, arr, i * T, j * T)
            o = out[:, i * T:(i + 1) * T, j * T:(j + 1) * T]
            hole = np.zeros((T, T), bool)
            if (i, j) == (0, 0):
                hole[5:20, 7:30] = True
            assert (o[0][~hole] == p.argmax(0)[~hole]).mean() > 0.999  # batched vs single: float ties only
            q = np.rint(p * PROB_SCALE)
            assert np.abs(o[1:].astype(int) - q)[:, ~hole].max() <= 1
            assert (o[:, hole] == NODATA).all()
    assert not (tmp_path / "out.tif.partial").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "out.tif.aux.xml", "s.tif"]  # + class colours


def test_blending_is_exact_away_from_overlaps_and_seamless(tmp_path, seg):
    h, w = 150, 200
    arr = scene_array(h, w, seed=1)
    src = write_scene(tmp_path / "s.tif", arr)
    predict_scene(seg, src, tmp_path / "out.tif", overlap=0.25, probabilities=True, progress=False)
    out, profile, _ = read(tmp_path / "out.tif")
    _georef_matches(profile, h, w)
    # stride 48, overlap 16: rows/cols [0, 48) are covered by the first tile only, with weight 1
    p = tile_probs(seg, arr, 0, 0)
    assert np.abs(out[1:, :48, :48].astype(int) - np.rint(p[:, :48, :48] * PROB_SCALE)).max() <= 1
    # in an overlap the result is the weighted mean of both tiles
    q = tile_probs(seg, arr, 0, 48)
    wts = blend_window(T, 16)
    x = 56  # inside the overlap of tiles at columns 0 and 48, first row band only covered by tile row 0
    a, b = wts[x], wts[x - 48]
    want = (p[:, 10, x] * a + q[:, 10, x - 48] * b) / (a + b)
    assert np.abs(out[1:, 10, x].astype(int) - np.rint(want * PROB_SCALE)).max() <= 1
    assert set(np.unique(out[0])) <= {0, 1, 2}
    probs_sum = out[1:].astype(int).sum(0)
    assert np.abs(probs_sum - PROB_SCALE).max() <= 3  # blended probabilities still sum to one



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_predicts_the_same_map_and_resumes(tmp_path, seg):
    """On CUDA the tiles, the blending accumulator and the class reduction live on the GPU: the map equals
    the CPU's up to float ties, and an interrupted GPU run resumes to the same file."""
    gpu = Predictor(copy.deepcopy(seg.model), seg.meta, device="cuda")
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # plain fp32 convolutions: compare the pipeline, not the rounding
    try:
        _gpu_matches_cpu_and_resumes(tmp_path, seg, gpu)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def _gpu_matches_cpu_and_resumes(tmp_path, seg, gpu):
    arr = scene_array(600, 130, seed=3)  # 12 strips; the first 256-row block is checkpointed after strip 6
    src = write_scene(tmp_path / "s.tif", arr)
    predict_scene(seg, src, tmp_path / "cpu.tif", overlap=0.25, probabilities=True, progress=False)
    full = predict_scene(gpu, src, tmp_path / "gpu.tif", overlap=0.25, probabilities=True, progress=False)
    a, b = read(tmp_path / "cpu.tif")[0], read(tmp_path / "gpu.tif")[0]
    assert (a[0] == b[0]).mean() > 0.999 and np.abs(a[1:].astype(int) - b[1:]).max() <= 1

    def stop(done, total):
        if done == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_scene(gpu, src, tmp_path / "again.tif", overlap=0.25, probabilities=True, progress=False,
                      callback=stop)
    r = predict_scene(gpu, src, tmp_path / "again.tif", overlap=0.25, probabilities=True, progress=False)
    assert r.resumed and r.tiles_computed < full.tiles_computed
    np.testing.assert_array_equal(read(tmp_path / "again.tif")[0], b)

def test_blend_window_ramps_sum_to_one():
    w = blend_window(64, 16)
    assert w[16:48].min() == 1.0 and w.min() > 0
    np.testing.assert_allclose(w[48:] + w[:16], 1.0, atol=1e-6)
    assert (blend_window(64, 0) == 1).all()


def test_scene_smaller_than_a_tile_is_padded_and_cropped(tmp_path, seg):
    arr = scene_array(40, 50, seed=2)
    src = write_scene(tmp_path / "small.tif", arr)
    r = predict_scene(seg, src, tmp_path / "out.tif", progress=False)
    out, profile, _ = read(tmp_path / "out.tif")
    _georef_matches(profile, 40, 50)
    assert r.tiles_total == 1 and out.shape == (1, 40, 50)
    want = tile_probs(seg, arr, 0, 0)[:, :40, :50].argmax(0)
    assert (out[0] == want).mean() > 0.999


def test_band_folder_and_tar_equal_the_multiband_file(tmp_path, seg):
    arr = scene_array(100, 90, seed=3)
    multi = write_scene(tmp_path / "s.tif", arr)
    folder = write_band_folder(tmp_path / "safe" / "GRANULE" / "IMG_DATA", arr)
    tar = tmp_path / "scene.tar"
    with tarfile.open(tar, "w") as tf:
        for f in sorted(folder.iterdir()):
            tf.add(f, arcname=f"S2_SCENE/{f.name}")
    outs = []
    for i, src in enumerate([multi, tmp_path / "safe", tar]):
        predict_scene(seg, src, tmp_path / f"o{i}.tif", overlap=0.25, progress=False)
        outs.append(read(tmp_path / f"o{i}.tif"))
    for o, profile, _ in outs[1:]:
        np.testing.assert_array_equal(o, outs[0][0])
        assert profile["transform"] == outs[0][1]["transform"] and profile["crs"] == outs[0][1]["crs"]


def test_coarse_bands_are_read_onto_the_10m_grid_window_by_window(tmp_path):
    """20 m / 60 m files: a window of the scene equals the whole-folder resampled read (away from its edges)."""
    arr = scene_array(120, 120, seed=4)
    folder = tmp_path / "f"
    folder.mkdir()
    files = {}
    for i, b in enumerate(PRETRAIN_BANDS):
        f = 6 if b in ("B1", "B9") else 2 if b not in ("B2", "B3", "B4", "B8") else 1
        a = arr[i, ::f, ::f]
        t = TRANSFORM @ Affine.scale(f)
        files[b] = folder / f"X_B{b[1:].zfill(2) if not b.endswith('A') else b[1:]}.tif"
        with rasterio.open(files[b], "w", driver="GTiff", count=1, height=a.shape[0], width=a.shape[1],
                           dtype=a.dtype, crs=CRS, transform=t) as dst:
            dst.write(a, 1)
    whole = read_band_files(files, PRETRAIN_BANDS).array
    with open_scene(folder) as scene:
        assert scene.grid.shape == (120, 120) and scene.transform == TRANSFORM and scene.kind == "bandfiles"
        from rasterio.windows import Window
        win = scene.read(Window(30, 24, 64, 64), PRETRAIN_BANDS)
    ref = whole[:, 24:88, 30:94].astype(int)
    assert np.abs(win.astype(int) - ref)[:, 6:-6, 6:-6].max() <= 1


def test_change_detection_over_two_dates(tmp_path, cd):
    a1, a2 = scene_array(T, 2 * T, seed=5), scene_array(T, 2 * T, seed=6)
    a2[:, 40:50, 100:120] = 0  # nodata on date 2 only
    s1 = write_scene(tmp_path / "d1.tif", a1)
    s2 = write_band_folder(tmp_path / "d2", a2, prefix="OTHER_PREFIX")
    predict_scene(cd, s1, tmp_path / "cm.tif", input2=s2, overlap=0.0, progress=False)
    out, profile, desc = read(tmp_path / "cm.tif")
    _georef_matches(profile, T, 2 * T)
    assert desc == ("change",)
    for j in range(2):
        want = tile_probs(cd, a1, 0, j * T, a2).argmax(0)
        got = out[0, :, j * T:(j + 1) * T]
        ok = got != NODATA
        assert (got[ok] == want[ok]).mean() > 0.999
    assert (out[0, 40:50, 100:120] == NODATA).all() and (out[0, :40] != NODATA).all()
    with pytest.raises(ValueError, match="two dates"):
        predict_scene(cd, s1, tmp_path / "x.tif", progress=False)


def test_classifier_per_tile_map_on_a_coarse_grid(tmp_path, cls):
    h, w = 150, 200
    arr = scene_array(h, w, seed=7)
    src = write_scene(tmp_path / "s.tif", arr)
    r = predict_scene(cls, src, tmp_path / "c.tif", overlap=0.0, probabilities=True, progress=False)
    out, profile, desc = read(tmp_path / "c.tif")
    assert (r.height, r.width) == (3, 4) and out.shape == (5, 3, 4)  # ceil(150/64), ceil(200/64)
    _georef_matches(profile, 3, 4, TRANSFORM @ Affine.scale(T))
    assert desc[0] == "class" and desc[1:] == ("p(x)", "p(y)", "p(z)", "p(w)")
    for i, j in [(0, 0), (2, 3), (1, 2)]:  # (2, 3) overhangs both edges: reflect-padded
        p = tile_probs(cls, arr, i * T, j * T)
        assert out[0, i, j] == p.argmax()
        assert np.abs(out[1:, i, j].astype(int) - np.rint(p * PROB_SCALE)).max() <= 1
    # overlapping tiles: stride 32, each cell is the 32 px square centred in its tile
    predict_scene(cls, src, tmp_path / "c2.tif", overlap=0.5, progress=False)
    out2, profile2, _ = read(tmp_path / "c2.tif")
    assert out2.shape == (1, 4, 6)  # rows 0, 32, 64, 96 (overhangs 150); cols 0 ... 160
    assert profile2["transform"].almost_equals(TRANSFORM @ Affine.translation(16, 16) @ Affine.scale(32))
    assert out2[0, 1, 2] == tile_probs(cls, arr, 32, 64).argmax()


def test_multilabel_classifier_writes_one_thresholded_band_per_class(tmp_path):
    """A multi-label model's map is its decision, not an argmax: band k is 1 where p(class k) reaches the
    threshold saved with the model (what evaluation and the MLflow model apply), 0 elsewhere, 255 on nodata."""
    classes = ["forest", "water", "urban"]
    h, w = 150, 200
    arr = scene_array(h, w, seed=11)
    arr[:, :64, 128:] = 0  # tiles (0, 2) and (0, 3) are nodata
    src = write_scene(tmp_path / "s.tif", arr)
    cells = [(i, j) for i in range(3) for j in range(4) if (i, j) not in {(0, 2), (0, 3)}]
    plain = Predictor.load(save_tiny(tmp_path / "m0", "vit_tiny_patch8_64", "multilabel", classes, seed=3))
    probs = {c: tile_probs(plain, arr, c[0] * T, c[1] * T) for c in cells}
    # thresholds between the tiles' probabilities, so each class is on in some tiles and off in others
    thresholds = np.median(np.stack(list(probs.values())), axis=0).tolist()
    ml = Predictor.load(save_tiny(tmp_path / "m1", "vit_tiny_patch8_64", "multilabel", classes, seed=3,
                                  thresholds=thresholds))
    predict_scene(ml, src, tmp_path / "m.tif", overlap=0.0, probabilities=True, progress=False)
    out, _, desc = read(tmp_path / "m.tif")
    assert out.shape == (6, 3, 4) and desc == ("forest", "water", "urban", "p(forest)", "p(water)", "p(urban)")
    assert not (tmp_path / "m.tif.aux.xml").exists()  # no class palette: the bands are not a class index
    assert (out[:, 0, 2:] == NODATA).all()
    for (i, j), p in probs.items():
        want = ml.decide(p[None])[0]
        assert (want == (p >= np.array(thresholds))).all()
        assert (out[:3, i, j] == want).all(), (i, j)
        assert np.abs(out[3:, i, j].astype(int) - np.rint(p * PROB_SCALE)).max() <= 1
    on = out[:3][:, out[0] != NODATA]
    assert (on.min(axis=1) == 0).all() and (on.max(axis=1) == 1).all()  # every class both on and off


def test_interrupted_run_resumes_without_recomputing(tmp_path, seg):
    h, w = 560, 64  # 12 strips of 1 tile; 256-row blocks checkpoint the progress
    arr = scene_array(h, w, seed=8)
    src = write_scene(tmp_path / "s.tif", arr)
    full = predict_scene(seg, src, tmp_path / "full.tif", probabilities=True, progress=False)

    class Stop(Exception):
        pass

    def stop_after_8(done, total):
        if done == 8:
            raise Stop

    out = tmp_path / "out.tif"
    with pytest.raises(Stop):
        predict_scene(seg, src, out, probabilities=True, progress=False, callback=stop_after_8)
    assert not out.exists() and (tmp_path / "out.tif.partial" / "state.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tif")]  # no temp file left
    r = predict_scene(seg, src, out, probabilities=True, progress=False)
    assert r.resumed and 0 < r.tiles_computed < full.tiles_computed == 12
    np.testing.assert_array_equal(read(out)[0], read(tmp_path / "full.tif")[0])
    assert not (tmp_path / "out.tif.partial").exists()
    # other options (replacing the finished output): the stale sidecar is discarded, everything recomputed
    with pytest.raises(Stop):
        predict_scene(seg, src, out, overlap=0.0, progress=False, callback=stop_after_8, overwrite=True)
    r = predict_scene(seg, src, out, overlap=0.0, probabilities=True, progress=False, overwrite=True)
    assert not r.resumed and r.tiles_computed == r.tiles_total


def _nothing_written(tmp_path, name="out.tif"):
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith((name, f".{name}"))]
    assert left == [], left


def test_bad_inputs_fail_clearly_and_write_nothing(tmp_path, seg, cd):
    good = write_scene(tmp_path / "good.tif", scene_array(T, T))
    text = tmp_path / "notes.tif"
    text.write_text("this is not a raster\n")
    with pytest.raises(BadSample, match="notes.tif"):
        predict_scene(seg, text, tmp_path / "out.tif", progress=False)
    _nothing_written(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        predict_scene(seg, tmp_path / "nope.tif", tmp_path / "out.tif", progress=False)
    # a band the model needs is missing
    eleven = [b for b in PRETRAIN_BANDS if b != "B9"]
    idx = [PRETRAIN_BANDS.index(b) for b in eleven]
    miss = write_scene(tmp_path / "miss.tif", scene_array(T, T)[idx], bands=eleven)
    with pytest.raises(SceneError, match="lacks band.*B9"):
        predict_scene(seg, miss, tmp_path / "out.tif", progress=False)
    folder = write_band_folder(tmp_path / "f", scene_array(T, T)[idx], bands=eleven)
    with pytest.raises(SceneError, match="B9"):
        predict_scene(seg, folder, tmp_path / "out.tif", progress=False)
    # no band names at all
    anon = write_scene(tmp_path / "anon.tif", scene_array(T, T), descriptions=False)
    with pytest.raises(SceneError, match="band_order"):
        predict_scene(seg, anon, tmp_path / "out.tif", progress=False)
    predict_scene(seg, anon, tmp_path / "anon_out.tif", band_order=PRETRAIN_BANDS, progress=False)
    # two dates on different CRSs / sizes
    other_crs = write_scene(tmp_path / "utm32.tif", scene_array(T, T), crs="EPSG:32632")
    with pytest.raises(SceneError, match="different CRSs"):
        predict_scene(cd, good, tmp_path / "out.tif", input2=other_crs, progress=False)
    bigger = write_scene(tmp_path / "big.tif", scene_array(T + 8, T))
    with pytest.raises(SceneError, match="differ in size"):
        predict_scene(cd, good, tmp_path / "out.tif", input2=bigger, progress=False)
    _nothing_written(tmp_path)


def test_cli_predict_and_errors(tmp_path, seg):
    from typer.testing import CliRunner

    from spectralgpt.cli import app

    src = write_scene(tmp_path / "s.tif", scene_array(T, T + 10))
    mdir = save_model(seg.model, tmp_path / "model", normalization=seg.meta["normalization"], extra=seg.meta["extra"])
    res = CliRunner().invoke(app, ["predict", "--model", str(mdir), "--input", str(src), "--output",
                                   str(tmp_path / "o.tif"), "--overlap", "0.5", "--probabilities", "--no-progress"])
    assert res.exit_code == 0, res.output
    out, profile, _ = read(tmp_path / "o.tif")
    assert out.shape == (4, T, T + 10) and profile["crs"] == rasterio.crs.CRS.from_string(CRS)
    text = tmp_path / "bad.tif"
    text.write_text("nope")
    res = CliRunner().invoke(app, ["predict", "-m", str(mdir), "-i", str(text), "-o", str(tmp_path / "b.tif")])
    assert res.exit_code == 2 and "not a GeoTIFF" in res.output and not (tmp_path / "b.tif").exists()


def test_class_maps_carry_class_colours_and_names(tmp_path, seg, cd):
    """A predicted map opens readably in QGIS: a colour table on the class band (in the COG itself for a single
    band, in the GDAL .aux.xml sidecar when probability bands come with it) and the class names."""
    from spectralgpt.inference.colormap import NAMED, class_colors

    src = write_scene(tmp_path / "s.tif", scene_array(40, 50, seed=2))
    names = list(seg.class_names or [str(i) for i in range(seg.cfg.num_classes)])
    for probs, out in ((False, tmp_path / "one.tif"), (True, tmp_path / "many.tif")):
        predict_scene(seg, src, out, probabilities=probs, progress=False)
        assert (tmp_path / f"{out.name}.aux.xml").exists()
        with rasterio.open(out) as d:
            cmap = d.colormap(1)
            assert d.colorinterp[0].name == "palette" and all(c.name == "gray" for c in d.colorinterp[1:])
            assert d.count == (1 + len(names) if probs else 1)
        assert all(cmap[i] == class_colors(names)[i] for i in range(len(names))) and cmap[NODATA][3] == 0
        assert f"<Category>{names[0]}</Category>" in (tmp_path / f"{out.name}.aux.xml").read_text()
    (tmp_path / "one.tif.aux.xml").unlink()
    with rasterio.open(tmp_path / "one.tif") as d:  # the COG itself keeps the table
        assert d.colormap(1)[0] == class_colors(names)[0]
    s2 = write_scene(tmp_path / "s2.tif", scene_array(40, 50, seed=3))
    predict_scene(cd, src, tmp_path / "cm.tif", input2=s2, progress=False)
    cd_names = list(cd.class_names or ["0", "1"])
    with rasterio.open(tmp_path / "cm.tif") as d:
        assert d.colormap(1)[1] == (*NAMED.get(cd_names[1].lower(), class_colors(cd_names)[1][:3]), 255)
