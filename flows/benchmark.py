"""Benchmark: the frozen-encoder protocols (linear probe, k-NN, UPerNet) over the benchmark's datasets, one task per
dataset, the paper-shaped table (``reports/benchmark/<name>.md`` + ``.json``) as a Prefect artifact, every score,
curve and the report tracked in MLflow. ``--profile params/benchmark/knn.yaml`` takes the benchmark section from a
profile instead of params.yaml."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import check_prefect, tracked
from spectralgpt.config import load_params
from spectralgpt.stages.benchmark import finish, open_encoder, run_dataset, select


@task(cache_policy=NO_CACHE, task_run_name="encoder")
def load(cfg):
    return open_encoder(cfg)


@task(cache_policy=NO_CACHE, task_run_name="benchmark-{entry.name}")
def run_one(cfg, entry, encoder, run) -> list:
    return run_dataset(cfg, entry, encoder, run=run)


@task(cache_policy=NO_CACHE, task_run_name="report")
def report(cfg, encoder, rows: list, run):
    return finish(cfg, encoder, rows, run)


@flow(name="benchmark", flow_run_name="benchmark-{params_path}")
def benchmark_flow(params_path: str = "params.yaml", profile: str | None = None,
                   datasets: list[str] | None = None) -> dict:
    p = load_params(params_path, profile=profile)
    cfg = p.benchmark_config()
    entries = select(cfg, datasets)
    with tracked(p, "benchmark", cfg, {"benchmark": cfg.name}) as run:
        encoder = load(cfg)
        rows = [row for entry in entries for row in run_one(cfg, entry, encoder, run)]
        result = report(cfg, encoder, rows, run)
        create_markdown_artifact(key=f"benchmark-{cfg.name}".lower().replace("_", "-").replace(".", "-"),
                                 markdown=result.markdown.read_text(), description=f"benchmark {cfg.name}")
        get_run_logger().info("benchmark %s: %d rows in %s", cfg.name, len(rows), result.markdown)
    return {"markdown": str(result.markdown), "json": str(result.json), "encoder_digest": result.encoder_digest,
            "rows": [{"dataset": r.dataset, "protocol": r.protocol, "task": r.task, "metrics": r.metrics,
                      "history": r.history} for r in rows]}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml", help="pipeline parameters (default: params.yaml)")
    ap.add_argument("--profile", default=None, help="a file of sections replacing params.yaml's (e.g. "
                    "params/benchmark/upernet.yaml)")
    ap.add_argument("--dataset", action="append", default=None, help="only this dataset (repeatable)")
    args = ap.parse_args()
    check_prefect()
    benchmark_flow(args.params, args.profile, args.dataset)
