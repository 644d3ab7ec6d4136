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


def test_deployments_run_one_at_a_time_and_the_gpu_one_trains_the_base_profile():
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.flows import load_flow_from_entrypoint

    from spectralgpt.config import load_params

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    PrefectYamlModel.model_validate(spec)  # the shape `prefect deploy` reads
    deployments = {d["name"]: d for d in spec["deployments"]}
    flow = load_flow_from_entrypoint(str(REPO / deployments["weekly-retrain"]["entrypoint"]))
    for name in ("weekly-retrain", "weekly-retrain-gpu"):
        d = deployments[name]
        limit = ConcurrencyLimitConfig(**d["concurrency_limit"])
        assert limit.limit == 1 and limit.collision_strategy.value == "ENQUEUE"
        assert set(d["parameters"]) <= set(flow.parameters.properties)
        assert "spectralgpt" in d["work_pool"]["job_variables"]["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"].split(",")
    gpu = deployments["weekly-retrain-gpu"]
    assert gpu["parameters"]["params_path"] == "params/base.yaml"
    base = load_params(REPO / gpu["parameters"]["params_path"])
    assert base.pretrain.model != load_params(REPO / "params.yaml").pretrain.model  # not the tiny CPU profile
