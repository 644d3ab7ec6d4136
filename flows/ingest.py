"""Ingest: list every configured dataset and run the cheap checks (nothing is decoded: the pixels are decoded once,
by preprocessing) in tasks mapped over index ranges, on the task runner that ``ingest.runner`` names (threads,
processes, or a Dask cluster); write each dataset's manifest and record them in MLflow."""

from __future__ import annotations

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import check_prefect, files, params, parse_args, tracked
from flows.runners import describe, task_runner
from spectralgpt.stages.ingest import check_part, n_listed, summary, write_manifest


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, task_run_name="list-{name}")
def list_source(p, name: str) -> int:
    return n_listed(p, name)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, task_run_name="check-{name}-{ranges[0][0]}")
def check_ranges(p, name: str, ranges: list[tuple[int, int]]) -> list[list]:
    return check_part(p, name, ranges)


def range_groups(n: int, groups: int, block: int = 4096) -> list[list[tuple[int, int]]]:
    """[0, n) in blocks of `block` dealt round-robin into at most `groups` tasks."""
    blocks = [(a, min(a + block, n)) for a in range(0, n, block)]
    return [blocks[i::groups] for i in range(groups) if blocks[i::groups]]


def ingest_flow(params_path: str = "params.yaml") -> dict:
    """The ingest flow on the task runner of ``ingest.runner`` (params are validated first)."""
    p = params(params_path)
    runner = task_runner(p.ingest.runner, p.ingest.workers)
    return ingest_on_runner.with_options(task_runner=runner)(params_path)


@flow(name="ingest", log_prints=False, task_runner=ThreadPoolTaskRunner(max_workers=2))
def ingest_on_runner(params_path: str = "params.yaml") -> dict:
    p = params(params_path)
    log = get_run_logger()
    log.info("check tasks run on %s", describe(p.ingest.runner, p.ingest.workers))
    with tracked(p, "ingest", {"data": p.data.model_dump(mode="json"), "ingest": p.ingest.model_dump()}) as run:
        sizes = {name: list_source.submit(p, name) for name in p.data.sources}
        groups = p.ingest.runner.workers or p.ingest.workers
        parts = {name: check_ranges.map(unmapped(p), unmapped(name), range_groups(f.result(), groups))
                 for name, f in sizes.items()}
        summary_ = {}
        for name, futures in parts.items():
            summary_[name] = s = summary(write_manifest(p, name, [f.result() for f in futures]))
            run.log_metrics({f"{name}.good": s["n_good"], f"{name}.bad": s["n_bad"]})
            log.info("%s: %d of %d pass the cheap checks %s", name, s["n_good"], s["n_listed"],
                     s["bad_by_reason"] or "")
        run.log_artifacts(files(f"{p.data.interim}/*/manifest.json"), "ingest")
    return summary_


if __name__ == "__main__":
    check_prefect()
    ingest_flow(parse_args(__doc__).params)
