"""Which MLflow store a run lands in: MLFLOW_TRACKING_URI over tracking.uri, relative SQLite paths and artifact
roots against the main repository root, also from the temporary copies DVC runs queued experiments in."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

from spectralgpt.tracking import pipeline_run, resolve_uri, stage_run
from spectralgpt.tracking.runs import artifact_location, model_version_ui_url, project_root, run_ui_url

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_inherited_store(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_BASELINE_REV", "SPECTRALGPT_PARENT_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


def _runs(uri: str, experiment: str = "store-test") -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_env_uri_wins_over_tracking_uri(tmp_path, monkeypatch):
    params_store, env_store = f"sqlite:///{tmp_path}/params.db", f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env_store)
    assert resolve_uri(params_store) == env_store
    with pipeline_run("pipeline", uri=params_store, experiment="store-test", artifacts=tmp_path / "art") as parent:
        with stage_run("toy", {"x": 1}, uri=params_store, experiment="store-test", artifacts=tmp_path / "art"):
            pass
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    runs = _runs(env_store)
    assert {r.info.run_name for r in runs} == {"pipeline", "toy"}
    child = next(r for r in runs if r.info.run_name == "toy")
    assert child.data.tags["mlflow.parentRunId"] == parent.run_id
    assert not (tmp_path / "params.db").exists()
    assert resolve_uri(params_store) == params_store  # without the variable, the params' URI


def test_project_root_rules(tmp_path, monkeypatch):
    main = tmp_path / "main"
    (main / ".dvc").mkdir(parents=True)
    (main / "sub" / "deeper").mkdir(parents=True)
    copy = main / ".dvc" / "tmp" / "exps" / "standalone" / "tmpabc123"  # as `dvc exp run --temp` lays it out
    (copy / ".dvc").mkdir(parents=True)
    (copy / "sub").mkdir()
    queued = main / ".dvc" / "tmp" / "exps" / "tmpxyz"  # as the queue's workers lay it out
    (queued / ".dvc").mkdir(parents=True)
    assert project_root(main / "sub" / "deeper") == main.resolve()
    assert project_root(copy) == main.resolve()
    assert project_root(copy / "sub") == main.resolve()
    assert project_root(queued) == main.resolve()
    lone = tmp_path / "lone"
    lone.mkdir()
    assert project_root(lone) == lone.resolve()
    elsewhere = tmp_path / "elsewhere-copy"  # a copy DVC might put anywhere: its DVC_ROOT names the main repo
    (elsewhere / ".dvc").mkdir(parents=True)
    monkeypatch.setenv("DVC_ROOT", str(main))
    assert project_root(elsewhere) == elsewhere.resolve()  # DVC_ROOT alone (a plain `dvc repro`) is not enough
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    assert project_root(elsewhere) == main.resolve()


def test_relative_paths_resolve_against_the_root_not_the_cwd(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    sub = tmp_path / "reports" / "x"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    root = tmp_path.resolve()
    assert resolve_uri("sqlite:///mlflow.db") == f"sqlite:///{root}/mlflow.db"
    assert resolve_uri(None) == f"sqlite:///{root}/mlflow.db"
    assert resolve_uri("sqlite:////abs/elsewhere.db") == "sqlite:////abs/elsewhere.db"
    assert resolve_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert artifact_location("mlartifacts", "e") == (root / "mlartifacts" / "e").as_uri()
    assert artifact_location(tmp_path / "abs", "e") == (root / "abs" / "e").as_uri()
    assert artifact_location("s3://bucket/art/", "e") == "s3://bucket/art/e"
    assert artifact_location("mlartifacts", "e", "http://mlflow:5000") is None  # the server's own store
    with stage_run("toy", uri="sqlite:///mlflow.db", experiment="store-test", artifacts="mlartifacts") as run:
        run.log_dict({"ok": True}, "probe.json")
    assert (tmp_path / "mlflow.db").is_file() and not (sub / "mlflow.db").exists()
    assert list((tmp_path / "mlartifacts" / "store-test").rglob("probe.json"))


def test_ui_links(tmp_path):
    store = f"sqlite:///{tmp_path}/m.db"
    with stage_run("toy", uri=store, experiment="store-test") as run:
        pass
    exp_id = MlflowClient(store).get_run(run.run_id).info.experiment_id
    assert run_ui_url(run.run_id, store) == f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs/{run.run_id}"
    assert model_version_ui_url("spectralgpt-eurosat", 3, "https://mlflow.example.org/") == \
        "https://mlflow.example.org/#/models/spectralgpt-eurosat/versions/3"


STAGE = textwrap.dedent("""\
    import os

    import yaml
    from spectralgpt.tracking import stage_run

    p = yaml.safe_load(open("params.yaml"))
    with stage_run("toy", {"x": p["x"]}, uri="sqlite:///mlflow.db", experiment="store-test",
                   artifacts="mlartifacts") as run:
        run.log_dict({"x": p["x"]}, "probe.json")
        run.set_tags({"cwd": os.getcwd()})
    open("out.txt", "w").write(str(p["x"]))
    """)


def _toy_dvc_repo(path: Path) -> dict:
    # the queue's worker starts `dvc` from PATH: the one installed beside this interpreter
    bin_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": bin_path, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_BASELINE_REV"):
        env.pop(name, None)
    (path / "stage.py").write_text(STAGE)
    (path / "params.yaml").write_text("x: 1\n")
    (path / "dvc.yaml").write_text(f"stages:\n  toy:\n    cmd: {sys.executable} stage.py\n    deps: [stage.py]\n"
                                   "    params: [x]\n    outs: [out.txt]\n")
    (path / ".gitignore").write_text("/mlflow.db\n/mlartifacts/\n")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "toy"]):
        subprocess.run(cmd, cwd=path, env=env, check=True, capture_output=True, timeout=120)
    return env


def test_queued_experiment_lands_in_the_main_store(tmp_path):
    """`dvc exp run --queue` + `--run-all` runs the stage in <repo>/.dvc/tmp/exps/tmpXXXX (a celery worker);
    its relative sqlite:///mlflow.db and mlartifacts still mean the main repository's."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = _toy_dvc_repo(repo)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "exp", "run", "--queue", "-n", "queued", "-S", "x=7"], cwd=repo, env=env, check=True,
                   capture_output=True, timeout=120)
    proc = subprocess.run([*dvc, "exp", "run", "--run-all"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = _runs(f"sqlite:///{repo}/mlflow.db")
    assert [r.data.params["x"] for r in runs] == ["7"]
    assert f"{repo.resolve()}/.dvc/tmp/exps/tmp" in runs[0].data.tags["cwd"]  # it ran in DVC's temporary copy
    assert list((repo / "mlartifacts" / "store-test").rglob("probe.json"))
    assert not list((repo / ".dvc" / "tmp" / "exps").rglob("mlflow.db"))
    assert not (repo / "out.txt").exists()  # the experiment ran in a copy, not in the workspace


def test_temp_experiment_lands_in_the_main_store(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = _toy_dvc_repo(repo)
    proc = subprocess.run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "-S", "x=5"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = _runs(f"sqlite:///{repo}/mlflow.db")
    assert [r.data.params["x"] for r in runs] == ["5"]
    assert f"{repo.resolve()}/.dvc/tmp/exps/standalone/" in runs[0].data.tags["cwd"]
    assert list((repo / "mlartifacts" / "store-test").rglob("probe.json"))
