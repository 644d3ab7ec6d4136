"""The retrain flow's operations on a real git+DVC repository, a real MLflow SQLite store and Prefect's test
server: a profile becomes params.yaml (never over a person's edits), one retrain at a time per repository, the
report as Prefect artifacts, and the library's log lines in the Prefect API."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from flows.retrain import ProfileError, RetrainLock, apply_profile, decision_rows
from spectralgpt.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

# One toy stage that reads params.yaml like the real ones and records itself through the same stage run
# (flows.common.tracked); with TOY_GATE set it waits for that file, so a test can hold a retrain mid-`dvc repro`.
STAGE = textwrap.dedent("""\
    import os
    import time
    from pathlib import Path

    from flows.common import params, tracked

    gate = os.environ.get("TOY_GATE")
    if gate:
        Path(gate + ".started").write_text(str(os.getpid()))
        deadline = time.monotonic() + 150
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    p = params()
    with tracked(p, "toy", p.promote):
        Path("out.txt").write_text(str(p.promote.margin))
    """)


def _params(store: str, margin: float) -> dict:
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["promote"]["margin"] = margin
    p["tracking"] = {"uri": store, "artifacts": "mlartifacts", "experiment": "retrain-test"}
    return p


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True, capture_output=True,
                          text=True, timeout=60)


def _git_repo(repo: Path, params: dict) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "params")
    return repo


def _toy_project(repo: Path, store: str) -> Path:
    """A git+DVC repository with one toy stage that depends on promote.margin, and a profile params/cpu.yaml."""
    repo.mkdir(parents=True)
    (repo / "stage.py").write_text(STAGE)
    (repo / "params.yaml").write_text(yaml.safe_dump(_params(store, 0.0), sort_keys=False))
    (repo / "params").mkdir()
    (repo / "params" / "cpu.yaml").write_text(yaml.safe_dump(_params(store, 0.25), sort_keys=False))
    (repo / "dvc.yaml").write_text(f"stages:\n  toy:\n    cmd: {sys.executable} stage.py\n    deps: [stage.py]\n"
                                   "    params: [promote.margin]\n    outs: [out.txt]\n")
    (repo / ".gitignore").write_text("/mlartifacts/\n")
    _git(repo, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True, capture_output=True, timeout=120)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "toy project")
    return repo


def _env(prefect_api: str, **extra: str) -> dict:
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO), "PREFECT_API_URL": prefect_api,
           "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", **extra}
    for name in ("MLFLOW_TRACKING_URI", "SPECTRALGPT_PARENT_RUN_ID", "DVC_ROOT", "DVC_EXP_BASELINE_REV"):
        env.pop(name, None)
    return env


def _retrain(*args: str) -> list[str]:
    return [sys.executable, "-m", "flows.retrain", *args]


# ------------------------------------------------------------------------------------------- profiles


def test_profile_replaces_a_committed_params_yaml(tmp_path):
    repo = _git_repo(tmp_path / "repo", _params("sqlite:///m.db", 0.0))
    ws, applied = repo / "params.yaml", repo / ".dvc" / "tmp" / "applied-profile.json"
    base = repo / "base.yaml"
    base.write_text(yaml.safe_dump(_params("sqlite:///m.db", 0.5)))
    assert apply_profile(base, ws, applied)
    assert ws.read_bytes() == base.read_bytes()
    assert not apply_profile(base, ws, applied)  # already applied: nothing to do
    other = repo / "large.yaml"  # params.yaml now differs from git, but only by what the last profile wrote
    other.write_text(yaml.safe_dump(_params("sqlite:///m.db", 0.75)))
    assert apply_profile(other, ws, applied)
    assert ws.read_bytes() == other.read_bytes()
    assert not apply_profile(ws, ws, applied)  # params.yaml itself is no profile


def test_profile_never_overwrites_uncommitted_edits(tmp_path):
    repo = _git_repo(tmp_path / "repo", _params("sqlite:///m.db", 0.0))
    ws, applied = repo / "params.yaml", repo / ".dvc" / "tmp" / "applied-profile.json"
    profile = repo / "base.yaml"
    profile.write_text(yaml.safe_dump(_params("sqlite:///m.db", 0.5)))
    edited = ws.read_text().replace("margin: 0.0", "margin: 0.125")
    ws.write_text(edited)
    with pytest.raises(ProfileError, match="uncommitted changes.*refusing to replace it with the profile"):
        apply_profile(profile, ws, applied)
    assert ws.read_text() == edited
    _git(repo, "add", "params.yaml")  # staged is still uncommitted
    with pytest.raises(ProfileError, match="uncommitted changes"):
        apply_profile(profile, ws, applied)
    assert ws.read_text() == edited and not applied.exists()


def test_profile_refuses_an_untracked_params_yaml_and_an_invalid_profile(tmp_path):
    repo = _git_repo(tmp_path / "repo", _params("sqlite:///m.db", 0.0))
    _git(repo, "rm", "-q", "--cached", "params.yaml")
    _git(repo, "commit", "-qm", "untrack")
    ws, applied = repo / "params.yaml", repo / "applied.json"
    before = ws.read_bytes()
    profile = repo / "base.yaml"
    profile.write_text(yaml.safe_dump(_params("sqlite:///m.db", 0.5)))
    with pytest.raises(ProfileError, match="untracked"):
        apply_profile(profile, ws, applied)
    bad = repo / "bad.yaml"
    bad.write_text(yaml.safe_dump({**_params("sqlite:///m.db", 0.5), "promote": {"margin": -1}}))
    with pytest.raises(ConfigError, match="promote.margin"):
        apply_profile(bad, ws, applied)
    assert ws.read_bytes() == before


# ----------------------------------------------------------------------------------------------- lock


def test_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    path = tmp_path / ".dvc" / "tmp" / "retrain.lock"
    first, second = RetrainLock(path), RetrainLock(path)
    held, done = threading.Event(), threading.Event()

    def hold():
        assert first.acquire(0, {"flow_run_id": "run-1"})
        held.set()
        done.wait(60)
        first.release()

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(60)
    assert not second.acquire(0.5)
    assert f"pid {os.getpid()}" in second.holder() and "since " in second.holder() and "run-1" in second.holder()
    done.set()
    t.join(60)
    assert second.acquire(0)
    second.release()
    assert not first.holder_path.exists()


def test_decision_rows_show_both_scores():
    rows = decision_rows([
        {"task": "classification", "name": "spectralgpt-classification", "decision": "rejected", "reason": "worse",
         "challenger_version": "3", "champion_version": "2", "metric": "oa", "challenger_value": 0.5,
         "champion_value": 0.75, "margin": 0.0, "data_version": "abc"},
        {"task": "change", "decision": "error", "reason": "store down"}])
    assert rows[0] == {"task": "classification", "decision": "rejected", "reason": "worse", "challenger": "v3",
                       "challenger value": "0.5000", "champion": "v2", "champion value": "0.7500", "metric": "oa",
                       "data version": "abc"}
    assert rows[1]["challenger"] == "-" and rows[1]["reason"] == "store down"


# ------------------------------------------------------------------------------------------ flow level


def _artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_retrain_with_a_profile_runs_every_stage_with_its_values_and_reports(tmp_path, prefect_api):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    repo = _toy_project(tmp_path / "repo", store)
    proc = subprocess.run(_retrain("--params", "params/cpu.yaml", "--wait-seconds", "5"), cwd=repo,
                          env=_env(prefect_api), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (repo / "params.yaml").read_bytes() == (repo / "params" / "cpu.yaml").read_bytes()
    assert (repo / "out.txt").read_text() == "0.25"
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("retrain-test")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert runs["toy"].data.params["margin"] == "0.25"  # the stage ran with the profile's value
    assert runs["toy"].data.tags["mlflow.parentRunId"] == runs["retrain"].info.run_id
    assert runs["retrain"].data.params["params"] == "params/cpu.yaml"

    table = _artifacts("retrain-decisions")[0]
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert {r["task"] for r in rows} == set(yaml.safe_load((REPO / "params.yaml").read_text())["finetune"])
    assert all(r["decision"] == "error" and "no registered model" in r["reason"] for r in rows), rows
    link = _artifacts("mlflow-pipeline-run")[0]
    assert f"(http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs/{runs['retrain'].info.run_id})" in link.data
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=repo, capture_output=True,
                            text=True, timeout=120, env=_env(prefect_api))
    assert json.loads(status.stdout or "{}") == {}


def _wait_for(path: Path, proc: subprocess.Popen, limit: float = 240.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the first retrain ended early ({proc.returncode}): {out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the first retrain never reached its stage ({path} missing)")
        time.sleep(0.2)


def test_overlapping_retrains_second_is_skipped_with_the_holder_named(tmp_path, prefect_api):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    repo = _toy_project(tmp_path / "repo", store)
    gate = tmp_path / "gate"
    first = subprocess.Popen(_retrain("--no-promote"), cwd=repo, env=_env(prefect_api, TOY_GATE=str(gate)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(Path(str(gate) + ".started"), first)  # the first retrain is inside `dvc repro`
        second = subprocess.run(_retrain("--no-promote", "--wait-seconds", "1"), cwd=repo,
                                env=_env(prefect_api), capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stdout + second.stderr
        said = second.stdout + second.stderr
        assert "another retrain holds the lock since" in said and f"pid {first.pid}" in said, said
        assert "skipped after waiting 1 s" in said
    finally:
        gate.write_text("go")
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert (repo / "out.txt").read_text() == "0.0"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert list(lock["stages"]) == ["toy"]
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=repo, capture_output=True,
                            text=True, timeout=120, env=_env(prefect_api))
    assert json.loads(status.stdout or "{}") == {}
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("retrain-test").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["retrain", "toy"]  # the skipped run opened nothing
    released = RetrainLock(repo / ".dvc" / "tmp" / "retrain.lock")
    assert released.acquire(0)
    released.release()


# --------------------------------------------------------------------------------------------- logging

PROBE = textwrap.dedent("""\
    import logging
    import sys

    if sys.argv[1] == "prefect-first":
        import prefect  # noqa: F401  (Prefect configures its logging before flows is imported)
    import flows  # noqa: F401
    from prefect import flow
    from prefect.runtime import flow_run


    @flow(name="log-probe")
    def probe(token: str) -> str:
        logging.getLogger("spectralgpt.probe").info("library line %s", token)
        return str(flow_run.id)


    print("FLOW_RUN", probe(sys.argv[2]))
    """)


@pytest.mark.parametrize("order", ["flows-first", "prefect-first"])
def test_library_log_lines_reach_the_prefect_api(tmp_path, prefect_api, order):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    token = uuid.uuid4().hex
    env = _env(prefect_api, PREFECT_LOGGING_TO_API_ENABLED="true")
    env.pop("PREFECT_LOGGING_EXTRA_LOGGERS", None)
    proc = subprocess.run([sys.executable, str(script), order, token], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_id = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("FLOW_RUN"))
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(run_id)])))
    lines = [(entry.name, entry.message) for entry in logs]
    assert ("spectralgpt.probe", f"library line {token}") in lines, lines
