"""prefect.yaml declares the weekly retraining on a process work pool; an unreachable Prefect API is named."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_weekly_retrain_deployment_is_declared():
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    weekly = deployments["weekly-retrain"]
    assert weekly["work_pool"]["name"] == "spectralgpt-process"
    schedule = weekly["schedules"][0]
    assert schedule["active"] and CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    assert schedule["cron"].split()[2:] == ["*", "*", "1"]  # weekly, on Mondays
    flow = load_flow_from_entrypoint(str(REPO / weekly["entrypoint"]))
    assert flow.name == "retrain" and set(weekly["parameters"]) <= set(flow.parameters.properties)
    assert "weekly-retrain-gpu" in deployments


def test_unreachable_prefect_api_is_named_before_any_work(tmp_path):
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "flows.ingest"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "http://127.0.0.1:9/api is unreachable" in proc.stderr
    assert not (tmp_path / "data").exists()
