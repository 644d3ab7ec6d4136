"""Registry on a real SQLite MLflow store: the pyfunc model matches Predictor, promotion policy, rollback, CLI."""
# ruff: noqa: F811  (pytest fixtures imported from tracking_helpers are redefined as arguments)

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import rasterio
from mlflow import MlflowClient
from rasterio.transform import from_origin
from tracking_helpers import empty_store_db, reflectance, store, tiny_model_dir  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.cli import app
from spectralgpt.inference import Predictor
from spectralgpt.tracking import champion_to_rescore, promote, record_rescore, register, rollback


def _tif(path, array, bands):
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1], count=array.shape[0],
                       dtype="uint16", crs="EPSG:32632", transform=from_origin(500000, 5000000, 10, 10)) as dst:
        dst.write(array.astype("uint16"))
        for i, b in enumerate(bands, 1):
            dst.set_band_description(i, b)
    return str(path)


@pytest.mark.parametrize("task", ["classification", "segmentation", "change"])
def test_champion_pyfunc_matches_predictor_on_arrays_dicts_and_geotiffs(task, store, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRALGPT_SERVE_ROOTS", str(tmp_path))  # path inputs are read only inside named roots
    model_dir = tiny_model_dir(tmp_path / "model", task)
    metrics = {"overall_accuracy": 0.7, "miou": 0.4, "f1": 0.5}
    register(task, model_dir, metrics, "data-v1")
    assert promote(task).promoted
    pyfunc = mlflow.pyfunc.load_model(f"models:/spectralgpt-{task}@champion")
    predictor = Predictor.load(model_dir)
    x, x2 = reflectance(3, seed=1), reflectance(3, seed=2)
    want = predictor.predict(x, x2 if task == "change" else None)
    assert want.shape[:2] == (3, predictor.cfg.num_classes)

    shuffled = list(reversed(PRETRAIN_BANDS))  # the caller's band order, selected by name
    got = pyfunc.predict({"image": x[:, ::-1].copy(), "image2": x2[:, ::-1].copy(), "bands": shuffled}
                         if task == "change" else {"image": x[:, ::-1].copy(), "bands": shuffled})
    np.testing.assert_allclose(got, want, atol=1e-5)
    if task != "change":
        np.testing.assert_allclose(pyfunc.predict(x), want, atol=1e-5)  # plain array in the model's order

    # GeoTIFFs 80x80 with bands in another order: read by name, centre-cropped to 64x64
    big = np.random.default_rng(3).integers(0, 10000, size=(2, 12, 80, 80))
    big2 = np.random.default_rng(4).integers(0, 10000, size=(2, 12, 80, 80))
    rows = [{"path": _tif(tmp_path / f"a{i}.tif", big[i][::-1], shuffled),
             "path2": _tif(tmp_path / f"b{i}.tif", big2[i][::-1], shuffled)} for i in range(2)]
    table = pyfunc.predict(pd.DataFrame(rows if task == "change" else [{"path": r["path"]} for r in rows]))
    want = predictor.predict(big[:, :, 8:72, 8:72], big2[:, :, 8:72, 8:72] if task == "change" else None)
    names = predictor.class_names
    got = np.stack([np.stack([np.asarray(v) for v in table[n]]) for n in names], axis=1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    if task == "classification":
        assert list(table["predicted"]) == [names[i] for i in want.argmax(1)]
    else:
        assert np.array_equal(np.asarray(table["predicted"].tolist()), want.argmax(1))

    small = _tif(tmp_path / "small.tif", big[0][:, :32, :32], PRETRAIN_BANDS)
    with pytest.raises(Exception, match="smaller than the model's 64x64"):
        pyfunc.predict(pd.DataFrame([{"path": small, "path2": small}]))


def test_registered_version_records_metrics_recipe_and_signature(store, tmp_path):
    model_dir = tiny_model_dir(tmp_path / "model")
    rv = register("classification", model_dir, {"overall_accuracy": 0.8, "kappa": 0.6, "per_class": [1]}, "d1")
    client = MlflowClient(store)
    mv = client.get_model_version("spectralgpt-classification", rv.version)
    assert str(client.get_model_version_by_alias("spectralgpt-classification", "challenger").version) == rv.version
    assert mv.tags["primary_metric"] == "overall_accuracy" and float(mv.tags["primary_value"]) == 0.8
    assert mv.tags["eval_data_version"] == "d1" and float(mv.tags["metric.kappa"]) == 0.6
    local = mlflow.artifacts.download_artifacts(f"models:/spectralgpt-classification/{rv.version}",
                                                dst_path=str(tmp_path / "dl"))
    recipe = json.loads(next((tmp_path / "dl").rglob("preprocessing.json")).read_text())
    assert recipe["bands"] == list(PRETRAIN_BANDS) and recipe["normalization"]["name"] == "minmax"
    info = mlflow.models.get_model_info(local)
    assert info.signature.outputs.inputs[0].shape == (-1, 3)  # the batch axis is free
    assert not list((tmp_path / "dl").rglob("python_model.pkl"))  # models from code: nothing pickled
    assert (tmp_path / "dl" / "code" / "spectralgpt" / "inference" / "predictor.py").is_file()


def _version(task, tmp_path, value, data, n):
    return register(task, tiny_model_dir(tmp_path / f"m{n}"), {"overall_accuracy": value}, data).version


def test_promotion_policy_and_rollback(store, tmp_path):
    t, client, name = "classification", MlflowClient(store), "spectralgpt-classification"
    champion = lambda: str(client.get_model_version_by_alias(name, "champion").version)  # noqa: E731
    v1 = _version(t, tmp_path, 0.80, "d1", 1)
    d = promote(t)
    assert d.promoted and d.reason == "no champion yet" and champion() == v1

    v2 = _version(t, tmp_path, 0.85, "d1", 2)
    d = promote(t, margin=0.1)  # better, but not by more than the margin
    assert d.decision == "rejected" and "margin" in d.reason and champion() == v1
    tags = client.get_model_version(name, v2).tags
    assert tags["promotion.decision"] == "rejected" and float(tags["promotion.champion_value"]) == 0.8
    assert float(tags["promotion.challenger_value"]) == 0.85 and tags["promotion.at"]
    d = promote(t)
    assert d.promoted and d.champion_version == v1 and champion() == v2
    assert client.get_model_version(name, v2).tags["promotion.decision"] == "promoted"
    again = promote(t)  # harmless
    assert again.decision == "unchanged" and champion() == v2
    assert client.get_model_version(name, v2).tags["promotion.decision"] == "promoted"

    v3 = _version(t, tmp_path, 0.85, "d1", 3)  # equal is not better
    assert promote(t).decision == "rejected" and champion() == v2
    v4 = _version(t, tmp_path, 0.99, "d2", 4)  # better, but on other data
    d = promote(t)
    assert d.decision == "rejected" and "d2" in d.reason and "d1" in d.reason and champion() == v2
    assert client.get_model_version(name, v4).tags["promotion.decision"] == "rejected"
    assert v3 != v4

    r = rollback(t)
    assert (r.from_version, r.to_version) == (v2, v1) and champion() == v1
    assert client.get_model_version(name, v2).tags["rolled_back_to"] == v1
    with pytest.raises(Exception, match="nothing to roll back to"):
        rollback(t)
    history = json.loads(client.get_registered_model(name).tags["champion_history"])
    assert [(h["event"], h["version"]) for h in history] == [("promote", v1), ("promote", v2), ("rollback", v1)]


def test_rolled_back_challenger_is_not_promoted_again(store, tmp_path):
    t = "classification"
    _version(t, tmp_path, 0.5, "d1", 1)
    promote(t)
    _version(t, tmp_path, 0.6, "d1", 2)
    assert promote(t).promoted
    rollback(t)
    d = promote(t)
    assert d.decision == "unchanged" and "no challenger" in d.reason


def test_a_champion_scored_on_an_old_test_set_is_rescored_then_compared(store, tmp_path):
    t, client, name = "classification", MlflowClient(store), "spectralgpt-classification"
    v1 = _version(t, tmp_path, 0.80, "d1", 1)
    assert champion_to_rescore(t) is None  # no champion yet
    promote(t)
    _version(t, tmp_path, 0.82, "d1", 2)
    assert champion_to_rescore(t) is None  # same test data: directly comparable
    v3 = _version(t, tmp_path, 0.75, "d2", 3)  # the test set changed (harder labels)
    ref = champion_to_rescore(t)
    assert ref == {"version": v1, "model_uri": f"{'models:/'}{name}/{v1}", "data_version": "d1",
                   "challenger_data_version": "d2"}
    out = record_rescore(t, v1, {"overall_accuracy": 0.70, "average_accuracy": 0.6}, "d2")
    assert out == {"version": v1, "from": "d1", "to": "d2", "value": 0.70, "previous_value": 0.80}
    tags = client.get_model_version(name, v1).tags
    assert tags["eval_data_version"] == "d2" and float(tags["primary_value"]) == 0.70
    assert json.loads(tags["rescored_from"])["value"] == 0.80 and float(tags["metric.average_accuracy"]) == 0.6
    assert champion_to_rescore(t) is None
    d = promote(t)  # 0.75 beats the champion's 0.70 on the same (new) data
    assert d.promoted and d.champion_value == 0.70 and d.challenger_version == v3
    history = json.loads(client.get_registered_model(name).tags["champion_history"])
    assert [h["event"] for h in history] == ["promote", "rescore", "promote"]
    with pytest.raises(ValueError, match="primary metric"):
        record_rescore(t, v3, {"miou": 0.5}, "d3")


def test_cli_models_promote_rollback(store, tmp_path):
    runner = CliRunner()
    _version("classification", tmp_path, 0.5, "d1", 1)
    res = runner.invoke(app, ["promote", "--task", "classification", "--tracking-uri", store, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["decision"] == "promoted"
    _version("classification", tmp_path, 0.4, "d1", 2)
    res = runner.invoke(app, ["promote", "--task", "classification"])  # URI from MLFLOW_TRACKING_URI
    assert res.exit_code == 0 and "rejected" in res.output
    res = runner.invoke(app, ["models", "--tracking-uri", store])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "spectralgpt-classification" in x)
    assert "v1" in line and "0.5000" in line and "v2" in line and "0.4000" in line
    res = runner.invoke(app, ["rollback", "--task", "classification"])
    assert res.exit_code == 1 and "nothing to roll back" in res.output
    res = runner.invoke(app, ["models", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db/x/y.db"])
    assert res.exit_code == 2 and "y.db" in res.output


@pytest.mark.slow
def test_mlflow_models_serve_answers_one_request_on_loopback(store, tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    register("classification", tiny_model_dir(tmp_path / "model"), {"overall_accuracy": 0.7}, "d1")
    promote("classification")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the server is started through `uvicorn` from the same environment
    env = {**os.environ, "MLFLOW_TRACKING_URI": store,
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                             "models:/spectralgpt-classification@champion", "--env-manager", "local",
                             "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        x = reflectance(2, seed=5)
        body = json.dumps({"inputs": x.tolist()}).encode()
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                             {"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=30) as resp:
                    answer = json.loads(resp.read())
                break
            except OSError:
                time.sleep(1)
        assert answer is not None, proc.stderr.read().decode()[-3000:] if proc.poll() is not None else "no answer"
        want = Predictor.load(tmp_path / "model").predict(x)
        np.testing.assert_allclose(np.asarray(answer["predictions"]), want, atol=1e-4)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
