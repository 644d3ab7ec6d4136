"""Fine-tune one downstream task on the pretrained encoder, tracked in MLflow."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import check_prefect, files, params, parse_args, tracked
from spectralgpt.stages.finetune import finetune


@task(cache_policy=NO_CACHE, task_run_name="finetune-{task_name}")
def run_finetune(p, task_name: str, run) -> dict:
    from spectralgpt.tracking import MlflowLogger

    result = finetune(p.finetune[task_name], callbacks=[MlflowLogger(run)])
    run.set_tags({f"spectralgpt.{k}": v for k, v in result.lineage.items()})
    return result.metrics


@flow(name="finetune", flow_run_name="finetune-{task}")
def finetune_flow(task: str, params_path: str = "params.yaml") -> dict:
    p = params(params_path)
    with tracked(p, f"finetune-{task}", p.finetune_for(task), {"task": task}) as run:
        metrics = run_finetune(p, task, run)
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        run.log_artifacts(files(f"reports/{task}/train_*"), "reports")
        get_run_logger().info("%s fine-tuned: %s", task, metrics)
    return metrics


if __name__ == "__main__":
    args = parse_args(__doc__, task=True)
    check_prefect()
    finetune_flow(args.task, args.params)
