"""HLS Burn Scars end to end on chips in the real download layout: the reader, a tiny segmentation model
fine-tuned on the 6 HLS bands through the stages (ingest, preprocess, finetune), and its saved band mapping is
what evaluation, `Predictor`, ``spectralgpt predict`` and the MLflow pyfunc apply: the same probabilities from the
6-band file by every route and by a 12-band input built by hand from the saved record; other band lists are
refused with a message naming the bands."""

import json

# ruff: noqa: F811  (pytest fixtures imported from tracking_helpers are redefined as arguments)

import mlflow
import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from hls_fixtures import CRS, chip, make_hls_burn_scars, stem, write_chip
from tracking_helpers import empty_store_db, store  # noqa: F401 (fixtures)
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModelContext
from typer.testing import CliRunner

from spectralgpt.bands import HLS_BANDS, PRETRAIN_BANDS, MissingBandsError
from spectralgpt.cli import app
from spectralgpt.config import (DataConfig, FinetuneConfig, IngestConfig, Params, PreprocessConfig, PretrainConfig,
                                PretrainStage, SourceConfig)
from spectralgpt.data.sample import BadSample
from spectralgpt.data.sources import load_dataset
from spectralgpt.evaluation.evaluate import evaluate
from spectralgpt.inference import Predictor
from spectralgpt.models import load_model
from spectralgpt.io.shards import ShardCorpus
from spectralgpt.stages.finetune import finetune, training_dataset
from spectralgpt.tasks import get_task
from spectralgpt.stages.ingest import ingest
from spectralgpt.stages.preprocess import preprocess_all
from spectralgpt.tracking.pyfunc import MODEL_ARTIFACT, ROOTS_ENV, SpectralGPTPyfunc, log_pyfunc
from spectralgpt.training import TrainConfig

SIZE = 32
HLS_NAMES = ["Blue", "Green", "Red", "NIR Narrow", "SWIR 1", "SWIR 2"]  # plain HLS names, with sensor: hls


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny segmentation model fine-tuned through the stages on a 6-band HLS Burn Scars corpus."""
    root = tmp_path_factory.mktemp("hls")
    top = make_hls_burn_scars(root / "raw", n_train=6, n_val=2, size=48)
    params = Params(data=DataConfig(raw=str(root / "raw"), interim=str(root / "interim"), shards=str(root / "shards"),
                                    sources={"segmentation": SourceConfig(kind="hls_burn_scars", root=str(top))}),
                    ingest=IngestConfig(workers=1), preprocess=PreprocessConfig(size=SIZE, workers=1),
                    pretrain=PretrainConfig(stages=[PretrainStage(name="s", img_size=SIZE, epochs=1)]))
    ingest(params)
    preprocess_all(params)
    tiny = {"depth": 1, "pyramid_channels": [16, 16, 16, 16], "fpn_channels": 16}
    cfg = FinetuneConfig(task="segmentation", model="seg_vit_tiny_patch8_64", img_size=SIZE, model_overrides=tiny,
                         mode="scratch", bands=HLS_NAMES, sensor="hls", fill="nearest", ignore_index=-1,
                         shards=str(root / "shards"),
                         out=str(root / "model"), validate={"every_steps": 2},
                         train=TrainConfig(max_steps=4, batch_size=2, lr=1e-3, device="cpu", amp="fp32",
                                           progress=False, log_every=1))
    result = finetune(cfg, work=root / "runs", reports=root / "reports")
    return {"root": root, "top": top, "model": result.model_dir, "shards": root / "shards", "history": result.history,
            "cfg": cfg}


def test_reader_reads_the_download_layout(tmp_path):
    top = make_hls_burn_scars(tmp_path, n_train=2, n_val=1, size=16)
    ds = load_dataset("hls_burn_scars", tmp_path)  # the root above hls_burn_scars/ works too
    assert sorted(ds.ids) == sorted([stem(0), stem(1, "L30"), stem(100)])
    assert ds.class_names == ("not burned", "burn scar")
    assert {e.id: e.split for e in ds._entries}[stem(100)] == "test"  # validation/ is the test split
    s = ds[ds.ids.index(stem(0))]
    image, mask = chip(16, seed=0)
    assert s.bands == HLS_BANDS and s.image.dtype == np.uint16 and s.image.shape == (6, 16, 16)
    np.testing.assert_array_equal(s.image[:, 5:, 5:], np.clip(np.rint(image[:, 5:, 5:] * 10000), 0, None))
    assert (s.image[:, :3, :3] == 0).all()  # -9999 reflectance is nodata, 0
    np.testing.assert_array_equal(s.label, mask) and s.label.dtype == np.int64
    assert len(load_dataset("hls_burn_scars", top, split="train")) == 2
    assert len(load_dataset("hls_burn_scars", top, split="test")) == 1
    assert len(load_dataset("hls_burn_scars", top, split="val")) == 0  # no such folder: a training hold-out
    subset = load_dataset("hls_burn_scars", top, bands=["HLS:SWIR_2", "HLS:BLUE"])[ds.ids.index(stem(0))]
    np.testing.assert_array_equal(subset.image, s.image[[5, 0]])
    # `scale` overrides the automatic factor
    assert load_dataset("hls_burn_scars", top, scale=1000)[ds.ids.index(stem(0))].image[3, 8, 8] == round(
        image[3, 8, 8] * 1000)
    with pytest.raises(ValueError, match="scale"):
        load_dataset("hls_burn_scars", top, scale=-1)


def test_reader_refuses_broken_chips(tmp_path):
    top = tmp_path / "hls_burn_scars"
    image, mask = chip(16, seed=1)
    write_chip(top / "training", "a", image, mask, mask_suffix="_mask.tif")  # the other spelling is accepted
    write_chip(top / "training", "b", image, np.where(mask == 1, 7, mask).astype(np.int16))
    write_chip(top / "validation", "c", image[:5], mask)
    (top / "training" / "d_merged.tif").write_bytes((top / "training" / "a_merged.tif").read_bytes())
    ds = load_dataset("hls_burn_scars", tmp_path)
    assert ds[ds.ids.index("a")].label.shape == (16, 16)
    for sid, reason in (("b", "unknown_label"), ("c", "missing_bands"), ("d", "missing_file")):
        with pytest.raises(BadSample) as e:
            ds[ds.ids.index(sid)]
        assert e.value.reason == reason, (sid, e.value)


def test_finetuned_model_records_its_band_mapping(trained):
    meta = json.loads((trained["model"] / "config.json").read_text())
    assert meta["model"]["bands"] == list(PRETRAIN_BANDS)  # the model keeps its 12 pretraining bands
    norm = meta["normalization"]
    mapping = norm["band_mapping"]
    assert mapping["input_bands"] == list(HLS_BANDS) and mapping["fill"] == "nearest"
    by_band = {e["model"]: (e["how"], e.get("input_band")) for e in mapping["bands"]}
    assert by_band["B8A"] == ("wavelength", "HLS:NIR_NARROW") and by_band["B12"] == ("wavelength", "HLS:SWIR_2")
    assert by_band["B1"] == ("nearest", "HLS:BLUE") and by_band["B7"] == ("nearest", "HLS:NIR_NARROW")
    assert norm["name"] == "minmax" and norm["input"]["conversion"] == "reflectance_dn"
    manifest = json.loads((trained["shards"] / "segmentation" / "train" / "manifest.json").read_text())
    assert manifest["bands"] == list(HLS_BANDS)  # the corpus stores the 6 input bands
    losses = [r["loss"] for r in trained["history"]]
    assert len(losses) == 4 and np.isfinite(losses).all()
    # evaluation reads the 6-band test corpus through the same record
    metrics = evaluate(trained["model"], trained["shards"] / "segmentation" / "test", split="test", device="cpu")
    assert 0 <= metrics["miou"] <= 1 and metrics["scored_on"] == "scenes"


@pytest.mark.parametrize("fill", ["zeros", "mean", "nearest"])
def test_training_batches_apply_each_fill(trained, fill):
    corpus = ShardCorpus(trained["shards"] / "segmentation" / "train")
    task = get_task("segmentation")
    ds = training_dataset(trained["cfg"].model_copy(update={"fill": fill}), task, corpus, SIZE)
    six = ds.recipe(torch.from_numpy(corpus.get_batch([0, 1], "image").astype(np.float32)))
    x = ds.batch([0, 1])["image"]  # after the random crop, rot90 and flips: compare values, not positions
    assert x.shape == (2, 12, SIZE, SIZE)
    k = {b: i for i, b in enumerate(PRETRAIN_BANDS)}
    for band, i in (("B2", 0), ("B8A", 3), ("B12", 5)):
        assert torch.equal(x[:, k[band]].flatten(1).sort(1).values, six[:, i].flatten(1).sort(1).values)
    if fill == "nearest":
        assert torch.equal(x[:, k["B1"]], x[:, k["B2"]]) and torch.equal(x[:, k["B9"]], x[:, k["B8A"]])
    else:  # a constant: 0, or the normalised mean of the training split's input bands
        mean = ds.normalised_mean() if fill == "mean" else 0.0
        every = torch.cat([ds.recipe(torch.from_numpy(corpus.get_batch([i], "image").astype(np.float32)))
                           for i in range(len(corpus))])
        assert fill == "zeros" or abs(mean - float(every.double().mean())) < 1e-6
        assert (x[:, k["B1"]] == mean).all() and (x[:, k["B9"]] == mean).all()
        assert ds.mapping.value[k["B5"]] == pytest.approx(mean)


def by_hand(model_dir, raw6: np.ndarray) -> np.ndarray:
    """Probabilities of the model on a 12-band input built from the saved record without `Predictor`: the
    reader's conversion, per-band min-max of the 6 bands, then each model band from its recorded source."""
    model, meta = load_model(model_dir)
    record = meta["normalization"]["band_mapping"]
    dn = np.where(np.isfinite(raw6) & (raw6 != -9999), raw6, 0) * 10000
    dn = np.clip(np.rint(dn), 0, 65535).astype(np.float32)
    lo, hi = dn.min(axis=(1, 2), keepdims=True), dn.max(axis=(1, 2), keepdims=True)
    norm6 = (dn - lo) / (hi - lo + 1e-10)
    bands12 = [norm6[e["input"]] if "input" in e else np.full(norm6.shape[1:], e["value"], np.float32)
               for e in record["bands"]]
    with torch.no_grad():
        logits = model(torch.from_numpy(np.stack(bands12)[None]))
    return torch.softmax(logits, 1).numpy()


def centre(path) -> np.ndarray:
    with rasterio.open(path) as src:
        a = src.read()
    top, left = (a.shape[1] - SIZE) // 2, (a.shape[2] - SIZE) // 2
    return a[:, top:top + SIZE, left:left + SIZE]


def test_predict_pyfunc_and_a_hand_built_input_agree(trained, tmp_path, monkeypatch):
    path = next((trained["top"] / "validation").glob("*_merged.tif"))
    raw = centre(path)  # the file as downloaded: float64 reflectance 0-1, -9999 in a corner
    want = by_hand(trained["model"], raw)
    p = Predictor.load(trained["model"])
    assert p.bands == HLS_BANDS and p.mapping.model_bands == PRETRAIN_BANDS
    np.testing.assert_allclose(p.predict(raw), want, atol=1e-5)
    shuffled = raw[[5, 4, 3, 2, 1, 0]]
    np.testing.assert_allclose(p.predict(shuffled, bands=HLS_NAMES[::-1], sensor="hls"), want, atol=1e-5)

    pyfunc = SpectralGPTPyfunc()
    pyfunc.load_context(PythonModelContext({MODEL_ARTIFACT: str(trained["model"])}, None))
    got = pyfunc.predict(None, {"image": shuffled[None], "bands": HLS_NAMES[::-1], "sensor": "hls"})
    np.testing.assert_allclose(got, want, atol=1e-5)
    monkeypatch.setenv(ROOTS_ENV, str(trained["top"]))
    table = pyfunc.predict(None, pd.DataFrame({"path": [str(path)]}), params={"bands": list(HLS_BANDS)})
    np.testing.assert_allclose(np.array(table["burn scar"][0]), want[0, 1], atol=1e-5)

    single = tmp_path / "chip.tif"  # the centre 32 x 32 of the chip: one tile, whose map is that prediction
    with rasterio.open(path) as src:
        window = rasterio.windows.Window(8, 8, SIZE, SIZE)
        profile = {**src.profile, "height": SIZE, "width": SIZE, "transform": src.window_transform(window)}
        data = src.read(window=window)
    with rasterio.open(single, "w", **profile) as dst:
        dst.write(data)
    out = tmp_path / "map.tif"
    r = CliRunner().invoke(app, ["predict", "-m", str(trained["model"]), "-i", str(single), "-o", str(out),
                                 "--band-order", "model", "--probabilities", "--device", "cpu",
                                 "--precision", "fp32", "--no-progress"])
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as src:
        classes, p_burned = src.read(1), src.read(3) / 254.0
    np.testing.assert_array_equal(classes, want[0].argmax(0))
    np.testing.assert_allclose(p_burned, want[0, 1], atol=1 / 254 + 1e-6)


def test_other_band_lists_are_refused(trained, tmp_path):
    p = Predictor.load(trained["model"])
    s2 = np.random.default_rng(0).integers(1, 10000, (1, 12, SIZE, SIZE)).astype(np.uint16)
    with pytest.raises(MissingBandsError, match="takes bands HLS:BLUE.*lacks HLS:BLUE"):
        p.predict(s2, bands=PRETRAIN_BANDS)  # Sentinel-2 bands are not what the mapping was trained with
    with pytest.raises(ValueError, match="model needs 6 bands"):
        p.predict(s2[:, :5])
    pyfunc = SpectralGPTPyfunc()
    pyfunc.load_context(PythonModelContext({MODEL_ARTIFACT: str(trained["model"])}, None))
    with pytest.raises(MlflowException, match="needs band\\(s\\) HLS:SWIR_2"):
        pyfunc.predict(None, {"image": s2[:, :5], "bands": HLS_BANDS[:5]})
    path = tmp_path / "s2.tif"
    with rasterio.open(path, "w", driver="GTiff", count=12, height=SIZE, width=SIZE, dtype="uint16", crs=CRS,
                       transform=rasterio.transform.from_origin(600000, 4200000, 10, 10)) as dst:
        dst.write(s2[0])
        for i, b in enumerate(PRETRAIN_BANDS, 1):
            dst.set_band_description(i, b)
    r = CliRunner().invoke(app, ["predict", "-m", str(trained["model"]), "-i", str(path), "-o",
                                 str(tmp_path / "o.tif"), "--device", "cpu", "--no-progress"])
    assert r.exit_code == 2 and "lacks band(s) HLS:BLUE" in r.output
    r = CliRunner().invoke(app, ["predict", "-m", str(trained["model"]), "-i", str(path), "-o",
                                 str(tmp_path / "o.tif"), "--band-order", "Blue,Green", "--sensor", "landsat7"])
    assert r.exit_code == 2 and "unknown sensor 'landsat7'" in r.output


def test_an_hls_granule_folder_predicts_like_the_chip(trained, tmp_path):
    """An HLS v2 S30 granule (one int16 file per band, reflectance x 10000, -9999 nodata, Fmask beside) is read by
    the product's band numbers and predicts the same map as the float chip with the same reflectance."""
    path = next((trained["top"] / "validation").glob("*_merged.tif"))
    with rasterio.open(path) as src:
        window = rasterio.windows.Window(8, 8, SIZE, SIZE)
        profile = {**src.profile, "height": SIZE, "width": SIZE, "transform": src.window_transform(window)}
        raw = src.read(window=window)
    chip_file = tmp_path / "chip.tif"
    with rasterio.open(chip_file, "w", **profile) as dst:
        dst.write(raw)
    granule = tmp_path / "HLS.S30.T10SEH.2021200T184919.v2.0"
    granule.mkdir()
    dn = np.where(raw == -9999, -9999, np.rint(raw * 10000)).astype(np.int16)
    one = {**profile, "count": 1, "dtype": "int16", "nodata": -9999}
    for number, k in (("B02", 0), ("B03", 1), ("B04", 2), ("B8A", 3), ("B11", 4), ("B12", 5), ("B05", 2)):
        with rasterio.open(granule / f"{granule.name}.{number}.tif", "w", **one) as dst:
            dst.write(dn[k], 1)
    with rasterio.open(granule / f"{granule.name}.Fmask.tif", "w", **{**one, "dtype": "uint8", "nodata": 255}) as dst:
        dst.write(np.zeros((SIZE, SIZE), np.uint8), 1)
    maps = []
    for source, extra in ((chip_file, ["--band-order", ",".join(HLS_NAMES), "--sensor", "hls"]), (granule, [])):
        out = tmp_path / f"{source.name}.map.tif"
        r = CliRunner().invoke(app, ["predict", "-m", str(trained["model"]), "-i", str(source), "-o", str(out),
                                     "--device", "cpu", "--precision", "fp32", "--no-progress", *extra])
        assert r.exit_code == 0, r.output
        with rasterio.open(out) as src:
            maps.append(src.read(1))
    np.testing.assert_array_equal(maps[0], maps[1])
    np.testing.assert_array_equal(maps[0], by_hand(trained["model"], raw)[0].argmax(0))


def test_the_logged_mlflow_model_applies_the_saved_mapping(trained, store, monkeypatch):
    """Logged to a real SQLite store and loaded back: its signature's default `bands` are the 6 input bands, its
    preprocessing artifact carries the mapping, and it predicts what the hand-built 12-band input gives."""
    path = next((trained["top"] / "validation").glob("*_merged.tif"))
    raw = centre(path)
    want = by_hand(trained["model"], raw)
    with mlflow.start_run():
        info = log_pyfunc(trained["model"])
    model = mlflow.pyfunc.load_model(info.model_uri)
    recipe = info.metadata["spectralgpt"]
    assert recipe["bands"] == list(HLS_BANDS) and recipe["model_bands"] == list(PRETRAIN_BANDS)
    assert recipe["band_mapping"]["fill"] == "nearest"
    monkeypatch.setenv(ROOTS_ENV, str(trained["top"]))
    table = model.predict(pd.DataFrame({"path": [str(path)]}))  # no `bands`: the signature's default
    np.testing.assert_allclose(np.array(table["burn scar"][0]), want[0, 1], atol=1e-5)
    got = model.predict({"image": raw[None], "bands": HLS_NAMES, "sensor": "hls"})
    np.testing.assert_allclose(got, want, atol=1e-5)
