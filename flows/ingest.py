"""Ingest: validate every raw sample of every configured dataset (one task per dataset, retried on transient
I/O errors), write quarantine reports and manifests, record them in MLflow."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import check_prefect, files, params, parse_args, tracked
from spectralgpt.stages.ingest import ingest_one, summary


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, task_run_name="ingest-{name}")
def ingest_source(p, name: str) -> dict:
    return summary(ingest_one(p, name))


@flow(name="ingest", log_prints=False)
def ingest_flow(params_path: str = "params.yaml") -> dict:
    p = params(params_path)
    log = get_run_logger()
    with tracked(p, "ingest", {"data": p.data.model_dump(mode="json"), "ingest": p.ingest.model_dump()}) as run:
        futures = {name: ingest_source.submit(p, name) for name in p.data.sources}
        summary = {name: f.result() for name, f in futures.items()}
        for name, s in summary.items():
            run.log_metrics({f"{name}.good": s["n_good"], f"{name}.bad": s["n_bad"]})
            log.info("%s: %d of %d usable %s", name, s["n_good"], s["n_listed"], s["bad_by_reason"] or "")
        run.log_artifacts(files(f"{p.data.interim}/*/quarantine.*", f"{p.data.interim}/*/manifest.json"), "ingest")
    return summary


if __name__ == "__main__":
    check_prefect()
    ingest_flow(parse_args(__doc__).params)
