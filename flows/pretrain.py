"""Pretrain: the MAE stages, in this process or across GPUs/processes with torchrun (`--nproc N`), tracked in
MLflow (per-step losses, reconstruction figures, the final model folder)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import check_prefect, files, params, tracked
from spectralgpt.stages.pretrain import pretrain
from spectralgpt.training.distributed import torchrun_command


@task(cache_policy=NO_CACHE, task_run_name="pretrain-in-process")
def run_here(p, run) -> dict:
    from spectralgpt.tracking import MlflowLogger

    result = pretrain(p.pretrain, callbacks=[MlflowLogger(run)])
    run.set_tags({f"spectralgpt.{k}": v for k, v in result.lineage.items() if isinstance(v, str)})
    return result.metrics


def launch(p, params_path: str, nproc: int | None = None, env=None):
    """This node's launch settings (flag > $SPECTRALGPT_* > pretrain.distributed) and its torchrun command."""
    d = p.pretrain.distributed.resolved(env, nproc_per_node=nproc)
    return d, torchrun_command(d, ["-m", "spectralgpt.cli", "pretrain", "--params", params_path])


@task(cache_policy=NO_CACHE, task_run_name="pretrain-torchrun-{world}")
def run_torchrun(cmd: list[str], world: int, run_id: str, uri: str) -> None:
    """torchrun starts this node's workers of the same entry point (DDP: gloo on CPU, NCCL on GPU); rank 0 logs."""
    from spectralgpt.tracking import resolve_uri

    get_run_logger().info("launching %d workers in all: %s", world, shlex.join(cmd))
    env = {**os.environ, "SPECTRALGPT_MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": resolve_uri(uri)}
    subprocess.run(cmd, check=True, env=env)  # the workers log to the store the parent run is in


@flow(name="pretrain")
def pretrain_flow(params_path: str = "params.yaml", nproc: int | None = None) -> dict:
    """Node 0's flow (in-process, or torchrun when the launch settings ask for more than one worker)."""
    p = params(params_path)
    d, cmd = launch(p, params_path, nproc)
    if d.node_rank != 0:
        raise ValueError(f"node_rank = {d.node_rank}: the flow runs on node 0; other nodes run "
                         "`python -m flows.pretrain --worker-node` (see README, Scaling out)")
    with tracked(p, "pretrain", p.pretrain) as run:
        if d.world_size > 1:
            run.set_tags({"spectralgpt.nnodes": str(d.nnodes), "spectralgpt.world_size": str(d.world_size)})
            run_torchrun(cmd, d.world_size, run.run_id, p.tracking.uri)
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
    ap.add_argument("--nproc", type=int, default=None,
                    help="workers per node (default: $SPECTRALGPT_NPROC, else pretrain.distributed.nproc_per_node, 1)")
    ap.add_argument("--worker-node", action="store_true",
                    help="on nodes other than 0: only start this node's torchrun workers (no Prefect, MLflow, DVC)")
    ap.add_argument("--print-command", action="store_true", help="print this node's torchrun command and exit")
    args = ap.parse_args()
    d, cmd = launch(params(args.params), args.params, args.nproc)
    if args.print_command:
        print(shlex.join(cmd))
    elif args.worker_node:
        if d.node_rank == 0:
            sys.exit("error: --worker-node is for nodes 1 to nnodes - 1 (set SPECTRALGPT_NODE_RANK); node 0 runs the flow")
        sys.exit(subprocess.run(cmd).returncode)
    else:
        check_prefect()
        pretrain_flow(args.params, args.nproc)
