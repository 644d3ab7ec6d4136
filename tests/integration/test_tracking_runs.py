"""Runs on a real SQLite MLflow store: nesting, lineage tags, failure states, unreachable stores, the logger."""
# ruff: noqa: F811  (pytest fixtures imported from tracking_helpers are redefined as arguments)

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tracking_helpers import empty_store_db, store  # noqa: F401 (fixtures)

from spectralgpt.tracking import (MlflowLogger, TrackingError, check_tracking, params_hash, pipeline_run,
                                  stage_run)
from spectralgpt.training.engine import FitResult

REPO = Path(__file__).resolve().parents[2]


def _git_repo(folder: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    (folder / "data.dvc").write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  size: 10\n"
                                     "  nfiles: 2\n  path: data/raw\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "data.dvc"], ["git", "commit", "-qm", "data"]):
        subprocess.run(cmd, cwd=folder, check=True, env=env, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True).stdout.strip()


def test_stage_runs_nest_under_the_pipeline_run_with_lineage_tags(store, tmp_path, monkeypatch):
    commit = _git_repo(tmp_path)
    params = {"preprocess": {"size": 64, "recipes": {"classification": "zscore"}, "bands": ["B2", "B3"]}}
    (tmp_path / "stats.json").write_text('{"mean": [1, 2]}')
    with pipeline_run("weekly", params={"seed": 0}, log_system_metrics=False) as parent:
        assert os.environ["SPECTRALGPT_PARENT_RUN_ID"] == parent.run_id
        with stage_run("preprocess", params=params["preprocess"], tags={"corpus": "eurosat"}) as run:
            run.log_metrics({"samples": 12, "per_class": [1, 2], "nested": {"bad": 0.5}})
            assert run.log_artifacts([tmp_path / "stats.json", tmp_path / "missing.json"]) == 1
            run.log_dict({"quarantined": []}, "quarantine.json")
    assert "SPECTRALGPT_PARENT_RUN_ID" not in os.environ
    # a stage in another process (dvc repro) finds its parent through the environment
    monkeypatch.setenv("SPECTRALGPT_PARENT_RUN_ID", parent.run_id)
    with stage_run("evaluate", log_system_metrics=False) as other:
        pass

    client = MlflowClient(store)
    child = client.get_run(run.run_id)
    tags, data = child.data.tags, child.data
    assert child.info.status == "FINISHED" and client.get_run(parent.run_id).info.status == "FINISHED"
    assert tags["mlflow.parentRunId"] == parent.run_id == tags["spectralgpt.parent_run_id"]
    assert tags["spectralgpt.stage"] == "preprocess" and tags["mlflow.runName"] == "preprocess"
    assert tags["spectralgpt.git_commit"] == commit and tags["spectralgpt.git_dirty"] == "false"
    assert tags["spectralgpt.data_md5"] == "0123456789abcdef0123456789abcdef.dir"
    assert tags["spectralgpt.params_hash"] == params_hash(params["preprocess"]) != params_hash({"size": 65})
    assert tags["corpus"] == "eurosat"
    assert data.params["size"] == "64" and data.params["recipes.classification"] == "zscore"
    assert data.params["bands"] == '["B2", "B3"]'
    assert data.metrics == {"samples": 12.0, "nested.bad": 0.5}
    assert sorted(a.path for a in client.list_artifacts(run.run_id)) == ["quarantine.json", "stats.json"]
    assert client.get_run(other.run_id).data.tags["mlflow.parentRunId"] == parent.run_id
    assert client.get_run(parent.run_id).data.tags["spectralgpt.kind"] == "pipeline"


def test_outside_a_repository_lineage_says_unknown(store):
    with stage_run("ingest", log_system_metrics=False) as run:
        pass
    tags = MlflowClient(store).get_run(run.run_id).data.tags
    assert tags["spectralgpt.git_commit"] == "unknown" and tags["spectralgpt.data_md5"] == "none"
    assert "mlflow.parentRunId" not in tags and tags["spectralgpt.parent_run_id"] == "none"


@pytest.mark.parametrize("error", [ValueError("bad band"), KeyboardInterrupt()])
def test_a_failing_or_interrupted_stage_ends_failed(store, error):
    with pytest.raises(type(error)):
        with pipeline_run("p") as parent:
            with stage_run("finetune", log_system_metrics=True) as run:
                raise error
    client = MlflowClient(store)
    for rid in (run.run_id, parent.run_id):
        r = client.get_run(rid)
        assert r.info.status == "FAILED", rid
        assert ("bad band" if isinstance(error, ValueError) else "KeyboardInterrupt") in r.data.tags["spectralgpt.failure"]


def test_sigterm_ends_the_stage_failed(store, tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, time
        from spectralgpt.tracking import stage_run
        with stage_run("pretrain", log_system_metrics=False) as run:
            open({str(tmp_path / 'run_id')!r}, "w").write(run.run_id)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 143, proc.stderr[-2000:]
    r = MlflowClient(store).get_run((tmp_path / "run_id").read_text())
    assert r.info.status == "FAILED" and r.data.tags["spectralgpt.failure"] == "terminated (SIGTERM)"


def test_sigkilled_stage_is_marked_failed_when_the_stage_runs_again(store, tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        from spectralgpt.tracking import stage_run
        with stage_run("finetune-change", log_system_metrics=False) as run:
            open({str(tmp_path / 'run_id')!r}, "w").write(run.run_id)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert proc.returncode == -9
    killed = (tmp_path / "run_id").read_text()
    client = MlflowClient(store)
    assert client.get_run(killed).info.status == "RUNNING"  # nothing could end it
    with stage_run("finetune-change", log_system_metrics=False) as run:
        assert run.run_id != killed
    r = client.get_run(killed)
    assert r.info.status == "FAILED" and "ended without closing the run" in r.data.tags["spectralgpt.failure"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracking_uri_fails_fast_naming_it(tmp_path):
    down = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(TrackingError, match=down.replace(".", r"\.")):
        check_tracking(down, timeout=2)
    assert time.monotonic() - start < 10
    (tmp_path / "a_file").write_text("x")
    bad = f"sqlite:///{tmp_path}/a_file/sub/mlflow.db"
    with pytest.raises(TrackingError, match="cannot create the database folder") as e:
        check_tracking(bad)
    assert bad in str(e.value)
    started = False
    with pytest.raises(TrackingError, match=down.replace(".", r"\.")):
        with stage_run("ingest", uri=down):
            started = True
    assert not started  # no work began, so nothing was lost


def test_mlflow_logger_records_step_metrics_in_batches(store, tmp_path):
    with stage_run("finetune", log_system_metrics=False) as run:
        logger = MlflowLogger(run, flush_every=3)
        calls = []
        original = logger.client.log_batch
        logger.client.log_batch = lambda *a, **k: (calls.append(k), original(*a, **k))[1]
        logger.on_train_start({"total_steps": 7, "lr": 1e-3, "sched": {"warmup": 2}})
        for step in range(1, 8):
            logger.on_step(step, {"loss": 1.0 / step, "lr": 1e-3, "note": "text"})
        logger.on_checkpoint(7, tmp_path / "checkpoints" / "step7.pt")
        logger.on_epoch_end(1, {"loss": 0.2})
        logger.on_train_end(FitResult(steps=7, epochs=1.0, seconds=2.0, images_per_second=10.0,
                                      checkpoint=tmp_path / "checkpoints" / "step7.pt"))
    client = MlflowClient(store)
    history = client.get_metric_history(run.run_id, "train.loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / s) for s in range(1, 8)]
    metric_calls = [c for c in calls if c.get("metrics")]
    assert len(metric_calls) <= 5  # 14 step metrics in 3-step batches + epoch + end, not one call per value
    data = client.get_run(run.run_id).data
    assert data.params["train.total_steps"] == "7" and data.params["train.sched.warmup"] == "2"
    assert data.tags["checkpoint.last"].endswith("step7.pt") and data.tags["checkpoint.last_step"] == "7"
    assert data.metrics["epoch.loss"] == 0.2 and data.metrics["fit.images_per_second"] == 10.0
    # a resumed fit reporting its start again with a changed value does not crash on immutable params
    logger.on_train_start({"total_steps": 9, "lr": 1e-3})
    assert client.get_run(run.run_id).data.tags["resumed.train.total_steps"] == "9"


def _png(path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    fig.add_subplot().imshow([[0, 1], [1, 0]])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def test_mlflow_logger_uploads_each_new_figure_with_its_step(store, tmp_path):
    out = tmp_path / "fit"
    with stage_run("pretrain", log_system_metrics=False) as run:
        logger = MlflowLogger(run)
        logger.on_train_start({"total_steps": 20, "out_dir": str(out), "start_step": 0})
        _png(out / "figures" / "epoch-0001.png")
        logger.on_step(5, {"loss": 1.0})
        logger.on_epoch_end(1, {"loss": 1.0})
        logger.on_epoch_end(1, {"loss": 1.0})  # nothing new: nothing uploaded again
        _png(out / "figures" / "epoch-0002.png")
        logger.on_step(10, {"loss": 0.5})
        logger.on_epoch_end(2, {"loss": 0.5})
    client = MlflowClient(store)
    steps = sorted(f.path for f in client.list_artifacts(run.run_id, "figures"))
    assert steps == ["figures/step-10", "figures/step-5"]
    assert [f.path for f in client.list_artifacts(run.run_id, "figures/step-5")] == ["figures/step-5/epoch-0001.png"]
    assert [f.path for f in client.list_artifacts(run.run_id, "figures/step-10")] == [
        "figures/step-10/epoch-0002.png"]
