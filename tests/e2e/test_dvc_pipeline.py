"""`dvc repro` of the whole tiny pipeline in a temporary git + DVC repository, driven by the retrain flow
(Prefect's test harness, a real SQLite MLflow store): every stage runs (the first time in two lanes), four task models are registered and
promoted, a second run is a no-op, a parameter change re-runs only the stages that depend on it, new pixels
(same files, same count) retrain everything into new model versions, and new test labels re-run only that
task's evaluation, whose score promotion refuses to compare with a champion scored on other data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from safetensors.numpy import load_file
from pipeline_helpers import project_copy, tiny_params, write_params

from spectralgpt.config import TASKS
from spectralgpt.data.synthetic import generate_demo_corpus

# ~10 minutes of `dvc repro` on 2 cores: `make test-all` runs it; the default suite covers every stage through
# tests/e2e/test_flows.py and content-keyed reuse on the real stages through tests/integration/test_stage_reuse.py
pytestmark = pytest.mark.slow


def run(*cmd, cwd, check=True):
    return subprocess.run(cmd, cwd=cwd, check=check, text=True, capture_output=True)


def dvc(*args, cwd, check=True):
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd, check=check)


@pytest.fixture(scope="module")
def repo(prefect_api, tmp_path_factory):
    root = project_copy(tmp_path_factory.mktemp("repo"))
    uri = f"sqlite:///{root}/mlflow.db"
    write_params(root / "params.yaml", tiny_params(uri, str(root / "mlartifacts")))
    run("git", "init", "-q", cwd=root)
    dvc("init", "-q", cwd=root)
    dvc("config", "core.autostage", "true", cwd=root)
    generate_demo_corpus(root / "data" / "raw", scale="tiny")
    dvc("add", "-q", "data/raw", cwd=root)  # kept as data.dvc at the top, as in the project
    (root / "data.dvc").write_text((root / "data/raw.dvc").read_text().replace("path: raw", "path: data/raw"))
    (root / "data/raw.dvc").unlink()
    run("git", "add", "-A", cwd=root)
    run("git", "-c", "user.email=ci@example.org", "-c", "user.name=ci", "commit", "-qm", "tiny pipeline", cwd=root)
    before = (Path.cwd(), os.environ.get("PATH"))
    os.chdir(root)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # stage commands
    try:
        from flows.retrain import retrain_flow

        result = retrain_flow("params.yaml", jobs=2)  # the first run in two lanes, as `make demo` runs it
        yield root, uri, result
    finally:
        os.chdir(before[0])
        os.environ["PATH"] = before[1] or ""


def test_every_stage_ran_and_models_are_champions(repo):
    from spectralgpt.tracking import list_models

    root, uri, result = repo
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    expected = {"ingest", "preprocess", "pretrain", "benchmark",
                *(f"{s}@{t}" for s in ("finetune", "evaluate") for t in TASKS)}
    assert expected <= set(lock)
    assert len(result["stale"]) == len(expected)
    assert {d["task"]: d["decision"] for d in result["decisions"]} == {t: "promoted" for t in TASKS}
    models = {m.name: m for m in list_models(uri=uri)}
    assert all(models[f"spectralgpt-{t}"].champion is not None for t in TASKS)
    metrics = json.loads(dvc("metrics", "show", "--json", cwd=root).stdout)
    assert any("reports/classification/metrics.json" in str(v) for v in metrics.values())


def test_second_repro_is_a_no_op(repo):
    root, _, _ = repo
    assert dvc("status", "--json", cwd=root).stdout.strip() in ("{}", "")
    out = dvc("repro", cwd=root).stdout
    assert "Running stage" not in out


def versions(uri) -> dict[str, list]:
    from mlflow import MlflowClient

    client = MlflowClient(uri, registry_uri=uri)
    return {t: sorted(client.search_model_versions(f"name = 'spectralgpt-{t}'"), key=lambda v: int(v.version))
            for t in TASKS}


def test_nothing_changed_retrain_is_a_no_op(repo):
    from flows.retrain import retrain_flow

    root, uri, _ = repo
    before = {t: len(v) for t, v in versions(uri).items()}
    result = retrain_flow("params.yaml")
    assert result["stale"] == []
    assert {d["task"]: d["decision"] for d in result["decisions"]} == {t: "unchanged" for t in TASKS}
    assert {t: len(v) for t, v in versions(uri).items()} == before  # no new model version


def test_param_change_reruns_only_dependent_stages(repo):
    root, _, _ = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["finetune"]["segmentation"]["train"]["max_steps"] = 4
    write_params(root / "params.yaml", params)
    stale = set(json.loads(dvc("status", "--json", cwd=root).stdout))
    assert stale == {"finetune@segmentation"}  # evaluate@segmentation follows once the model changes
    out = dvc("repro", cwd=root).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"finetune@segmentation", "evaluate@segmentation"}


def weights(path: Path) -> dict:
    return load_file(str(path / "model.safetensors"))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def rewrite(files, change) -> None:
    for f in files:
        with rasterio.open(f) as src:
            profile, data, names = src.profile, src.read(), src.descriptions
        with rasterio.open(f, "w", **profile) as dst:
            dst.write(change(data).astype(data.dtype))
            dst.descriptions = names


def commit_data(root: Path) -> str:
    """What a user does when new data arrives: record its version in data.dvc."""
    dvc("commit", "-f", "-q", "data.dvc", cwd=root)
    return yaml.safe_load((root / "data.dvc").read_text())["outs"][0]["md5"]


def locked(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def test_new_pixels_same_count_retrain_every_model(repo):
    from flows.retrain import retrain_flow

    root, uri, _ = repo
    models = ["pretrain", *TASKS]
    before = {m: weights(root / "models" / m) for m in models}
    old_versions = versions(uri)
    files = sorted((root / "data/raw/pretrain").rglob("*.tif"))
    rewrite(files[: len(files) // 3], lambda a: np.clip(a.astype(np.int64) + 150, 0, 10000))  # same names, count
    data_md5 = commit_data(root)
    result = retrain_flow("params.yaml")
    assert {"ingest", "preprocess"} <= set(result["stale"])
    for m in models:
        assert not same(before[m], weights(root / "models" / m)), f"{m} was not retrained"
    new_versions = versions(uri)
    decisions = {d["task"]: d for d in result["decisions"]}
    for t in TASKS:
        assert len(new_versions[t]) == len(old_versions[t]) + 1
        latest = new_versions[t][-1]
        assert latest.tags["lineage.data_md5"] == data_md5 != old_versions[t][-1].tags["lineage.data_md5"]
        assert latest.tags["lineage.pretrained_digest"] != old_versions[t][-1].tags["lineage.pretrained_digest"]
        assert decisions[t]["decision"] in ("promoted", "rejected")
        assert decisions[t]["challenger_version"] == str(latest.version)
        assert latest.tags["promotion.decision"] == decisions[t]["decision"]  # recorded on the version


def test_new_test_labels_rerun_only_that_evaluation(repo):
    from flows.retrain import retrain_flow

    root, uri, _ = repo
    lock, model = locked(root), weights(root / "models/segmentation")
    old_versions = versions(uri)
    masks = sorted((root / "data/raw/segmunich/test/label").glob("*.tif"))
    rewrite(masks, lambda a: a[:, ::-1, :])  # corrected test labels
    commit_data(root)
    result = retrain_flow("params.yaml")
    now = locked(root)
    rerun = {name for name in lock if now[name] != lock[name]}
    assert rerun == {"ingest", "preprocess", "evaluate@segmentation"}, rerun
    assert same(model, weights(root / "models/segmentation"))
    new_versions = versions(uri)
    assert {t: len(v) for t, v in new_versions.items()} == {
        t: len(old_versions[t]) + (t == "segmentation") for t in TASKS}
    assert new_versions["segmentation"][-1].tags["lineage.eval_digest"] != \
        new_versions["segmentation"][-2].tags["lineage.eval_digest"]
    # the champion, scored on the old labels, is scored again on the new ones, then compared on scores
    seg = next(d for d in result["decisions"] if d["task"] == "segmentation")
    challenger = new_versions["segmentation"][-1]
    assert seg["rescored"]["to"] == challenger.tags["eval_data_version"] != seg["rescored"]["from"], seg
    assert seg["champion_value"] == seg["rescored"]["value"] and "not comparable" not in seg["reason"], seg
    assert seg["decision"] == ("promoted" if seg["challenger_value"] > seg["champion_value"] else "rejected"), seg
    assert all("rescored" not in d for d in result["decisions"] if d["task"] != "segmentation")
