"""Evaluate one task's fine-tuned model on the held-out split, write its report, and register it in MLflow as
a new version of `spectralgpt-<task>` with alias `challenger` (promotion is the retrain flow's decision)."""

from __future__ import annotations


from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.artifacts import create_markdown_artifact

from flows.common import check_prefect, files, params, parse_args, tracked
from spectralgpt.stages.evaluate import evaluate


@task(cache_policy=NO_CACHE, task_run_name="evaluate-{task_name}")
def run_evaluate(p, task_name: str) -> dict:
    return evaluate(p, task_name)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, task_run_name="register-{task_name}")
def register_model(p, task_name: str, metrics: dict, run_id: str) -> dict:
    from spectralgpt.tracking import register

    t = p.tracking
    v = register(task_name, p.finetune[task_name].out, metrics, metrics["data_version"], run_id, uri=t.uri,
                 experiment=t.experiment, artifacts=t.artifacts, lineage=metrics["lineage"])
    return {"name": v.name, "version": v.version, "primary_metric": v.primary_metric, "value": v.value}


@flow(name="evaluate", flow_run_name="evaluate-{task}")
def evaluate_flow(task: str, params_path: str = "params.yaml") -> dict:
    p = params(params_path)
    p.finetune_for(task)  # a clear error when params has no section for it
    with tracked(p, f"evaluate-{task}", p.evaluate, {"task": task}) as run:
        metrics = run_evaluate(p, task)
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        run.set_tags({f"spectralgpt.{k}": v for k, v in metrics["lineage"].items()})
        run.log_artifacts(files(f"{p.evaluate.out}/{task}/*"), "report")
        version = register_model(p, task, metrics, run.run_id)
        rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items() if isinstance(v, float))
        create_markdown_artifact(key=f"evaluation-{task}", description=f"{task} evaluation",
                                 markdown=f"## {task}: {version['name']} v{version['version']}\n\n| metric | value |\n"
                                          f"| --- | --- |\n{rows}\n")
        get_run_logger().info("%s: %s = %s; registered %s v%s as challenger", task, metrics["primary_metric"],
                              metrics[metrics["primary_metric"]], version["name"], version["version"])
    return {"metrics": metrics, "registered": version}


if __name__ == "__main__":
    args = parse_args(__doc__, task=True)
    check_prefect()
    evaluate_flow(args.task, args.params)
