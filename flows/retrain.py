"""Retrain: the scheduled job. Check the data version, let DVC decide what is stale and reproduce it
(`dvc repro`, every stage nested under one MLflow pipeline run), then apply the promotion policy to each task's
new challenger and report every decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import check_prefect, params
from spectralgpt.config import TASKS


def dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dvc", *args]
    return subprocess.run(cmd, check=True, text=True, capture_output=capture, env=os.environ.copy())


@task(cache_policy=NO_CACHE)
def data_version(path: str = "data.dvc") -> str:
    from spectralgpt.tracking.runs import data_md5

    return data_md5(path)


@task(cache_policy=NO_CACHE)
def stale_stages() -> list[str]:
    out = dvc("status", "--json", capture=True).stdout
    return sorted(json.loads(out or "{}"))


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30)
def reproduce(pull: bool) -> None:
    log = get_run_logger()
    if pull:
        dvc("pull", "--allow-missing")
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=os.environ.copy())
    for line in proc.stdout:
        if line.strip() and "%|" not in line:  # progress bars stay in the stage logs
            log.info(line.rstrip())
    if proc.wait():
        raise RuntimeError(f"dvc repro failed with exit code {proc.returncode}; the completed stages are kept "
                           "(run the retrain flow or `dvc repro` again to resume)")


@task(cache_policy=NO_CACHE)
def promote_task(task_name: str, margin: float, uri: str) -> dict:
    from spectralgpt.tracking import RegistryError, promote

    try:
        return promote(task_name, margin, uri=uri).to_dict()
    except RegistryError as e:
        return {"task": task_name, "decision": "error", "reason": str(e)}


@flow(name="retrain")
def retrain_flow(params_path: str = "params.yaml", promote: bool = True, pull: bool = False,
                 push: bool = False) -> dict:
    from spectralgpt.tracking import pipeline_run

    log = get_run_logger()
    p = params(params_path)
    t = p.tracking
    version = data_version()
    stale = stale_stages()
    log.info("data version %s; stale: %s", version, ", ".join(stale) or "nothing")
    with pipeline_run("retrain", {"params": params_path, "stale": stale}, {"data_version": version}, uri=t.uri,
                      experiment=t.experiment, artifacts=t.artifacts) as run:
        reproduce(pull)
        decisions = [promote_task(name, p.promote.margin, t.uri) for name in p.finetune] if promote else []
        if push:
            dvc("push")
        run.log_dict({"data_version": version, "stale": stale, "decisions": decisions}, "retrain.json")
    rows = "\n".join(f"| {d.get('task')} | {d.get('decision')} | {d.get('reason', '')} |" for d in decisions)
    create_markdown_artifact(key="retrain-report", description="stages reproduced and promotion decisions",
                             markdown=f"## Retrain on data {version}\n\nStale before the run: "
                                      f"{', '.join(stale) or 'nothing'}\n\n| task | decision | reason |\n"
                                      f"| --- | --- | --- |\n{rows}\n")
    for d in decisions:
        log.info("%s: %s (%s)", d.get("task"), d.get("decision"), d.get("reason", ""))
    return {"data_version": version, "stale": stale, "decisions": decisions, "tasks": list(TASKS)}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--no-promote", action="store_true")
    ap.add_argument("--pull", action="store_true", help="dvc pull before reproducing")
    ap.add_argument("--push", action="store_true", help="dvc push the new outputs")
    a = ap.parse_args()
    check_prefect()
    retrain_flow(a.params, not a.no_promote, a.pull, a.push)
