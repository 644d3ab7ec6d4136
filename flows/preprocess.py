"""Preprocess: each corpus's shards are written by tasks mapped over shard groups (run in parallel by the task
runner that ``preprocess.runner`` names: threads, processes, or a Dask cluster), then the corpus is assembled.
Shard files are keyed by content, so they are byte-identical whichever runner wrote them."""

from __future__ import annotations

import math

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import check_prefect, params, parse_args, tracked
from flows.runners import describe, task_runner
from spectralgpt.data.preprocess import preprocess
from spectralgpt.stages.preprocess import corpus_dir, preprocess_job, splits_of


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, task_run_name="shards-{name}-{split}-{shards}")
def write_shards(p, name: str, split: str | None, shards: list[int]) -> list[int]:
    preprocess(**preprocess_job(p, name, split), workers=1, shards=shards, finalize=False)
    return shards


@task(cache_policy=NO_CACHE, retries=1, task_run_name="assemble-{name}-{split}")
def assemble(p, name: str, split: str | None) -> dict:
    result = preprocess(**preprocess_job(p, name, split), workers=1, shards=[])
    return {"items": result.n_items, "shards": result.n_shards, "quarantined": len(result.quarantine),
            "content_digest": result.manifest["content_digest"]}


def shard_groups(n: int, shard_size: int, groups: int) -> list[list[int]]:
    shards = list(range(math.ceil(n / shard_size)))
    return [shards[i::groups] for i in range(groups) if shards[i::groups]]


def preprocess_flow(params_path: str = "params.yaml") -> dict:
    """The preprocess flow on the task runner of ``preprocess.runner`` (params are validated first)."""
    p = params(params_path)
    runner = task_runner(p.preprocess.runner, p.preprocess.workers)
    return preprocess_on_runner.with_options(task_runner=runner)(params_path)


@flow(name="preprocess", task_runner=ThreadPoolTaskRunner(max_workers=2))
def preprocess_on_runner(params_path: str = "params.yaml") -> dict:
    p = params(params_path)
    log = get_run_logger()
    log.info("shard tasks run on %s", describe(p.preprocess.runner, p.preprocess.workers))
    with tracked(p, "preprocess", p.preprocess) as run:
        summary = {}
        for name in p.data.sources:
            for split in splits_of(p, name):
                job = preprocess_job(p, name, split)
                groups = shard_groups(len(job["source"]), p.preprocess.shard_size,
                                      p.preprocess.runner.workers or p.preprocess.workers)
                write_shards.map(unmapped(p), unmapped(name), unmapped(split), groups).result()
                key = name if split is None else f"{name}/{split}"
                summary[key] = done = assemble(p, name, split)
                run.log_metrics({f"{key}.items": done["items"], f"{key}.shards": done["shards"]})
                log.info("%s: %s", key, done)
                run.log_artifacts([corpus_dir(p, name, split) / f for f in ("manifest.json", "stats.json",
                                                                              "quarantine.json")], f"shards/{key}")
    return summary


if __name__ == "__main__":
    check_prefect()
    preprocess_flow(parse_args(__doc__).params)
