"""Pretrain: the MAE stages, in this process or across GPUs/processes with torchrun (`--nproc N`), tracked in
MLflow (per-step losses, reconstruction figures, the final model folder)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import check_prefect, files, params, tracked
from spectralgpt.stages.pretrain import pretrain


@task(cache_policy=NO_CACHE, task_run_name="pretrain-in-process")
def run_here(p, run) -> dict:
    from spectralgpt.tracking import MlflowLogger

    result = pretrain(p.pretrain, callbacks=[MlflowLogger(run)])
    run.set_tags({f"spectralgpt.{k}": v for k, v in result.lineage.items() if isinstance(v, str)})
    return result.metrics


@task(cache_policy=NO_CACHE, task_run_name="pretrain-torchrun-{nproc}")
def run_torchrun(params_path: str, nproc: int, run_id: str, uri: str) -> None:
    """torchrun starts `nproc` workers of the same entry point (DDP: gloo on CPU, NCCL on GPU); rank 0 logs."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "-m", "spectralgpt.cli",
           "pretrain", "--params", params_path]
    from spectralgpt.tracking import resolve_uri

    env = {**os.environ, "SPECTRALGPT_MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": resolve_uri(uri)}
    subprocess.run(cmd, check=True, env=env)  # the workers log to the store the parent run is in


@flow(name="pretrain")
def pretrain_flow(params_path: str = "params.yaml", nproc: int = 1) -> dict:
    p = params(params_path)
    with tracked(p, "pretrain", p.pretrain) as run:
        if nproc > 1:
            run_torchrun(params_path, nproc, run.run_id, p.tracking.uri)
            metrics = {}
        else:
            metrics = run_here(p, run)
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        reports = Path("reports/pretrain")
        run.log_artifacts(files("reports/pretrain/*.png", "reports/pretrain/*.csv", "reports/pretrain/*.json"), "reports")
        run.log_artifacts(files(f"{p.pretrain.out}/config.json"), "model")
        get_run_logger().info("pretraining done: %s (reports in %s)", metrics, reports)
    return metrics


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--nproc", type=int, default=int(os.environ.get("SPECTRALGPT_NPROC", "1")),
                    help="processes for torchrun (default: $SPECTRALGPT_NPROC or 1)")
    args = ap.parse_args()
    check_prefect()
    pretrain_flow(args.params, args.nproc)
