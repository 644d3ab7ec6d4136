"""`dvc repro` of the whole tiny pipeline in a temporary git + DVC repository, driven by the retrain flow
(Prefect's test harness, a real SQLite MLflow store): every stage runs, four task models are registered and
promoted, a second run is a no-op, and a parameter change re-runs only the stages that depend on it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import project_copy, tiny_params, write_params

from spectralgpt.config import TASKS
from spectralgpt.data.synthetic import generate_demo_corpus


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
    dvc("add", "-q", "data/raw", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "-c", "user.email=ci@example.org", "-c", "user.name=ci", "commit", "-qm", "tiny pipeline", cwd=root)
    before = (Path.cwd(), os.environ.get("PATH"))
    os.chdir(root)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # stage commands
    try:
        from flows.retrain import retrain_flow

        result = retrain_flow("params.yaml")
        yield root, uri, result
    finally:
        os.chdir(before[0])
        os.environ["PATH"] = before[1] or ""


def test_every_stage_ran_and_models_are_champions(repo):
    from spectralgpt.tracking import list_models

    root, uri, result = repo
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    expected = {"ingest", "preprocess", "pretrain", *(f"{s}@{t}" for s in ("finetune", "evaluate") for t in TASKS)}
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
