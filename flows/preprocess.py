"""Preprocess: each corpus's shards are written by tasks mapped over its shards, one task per shard (run in parallel
by the task runner that ``preprocess.runner`` names: threads, processes, or a Dask cluster), then each corpus is
assembled and its quarantine report written. Every sample is decoded and checked once, by the task that writes its
shard. Each corpus is listed once, by the flow; a task is sent only the samples of its shard (`part_job`), so its
memory does not grow with the corpus. Shard files are keyed by content, so they are byte-identical whichever
runner wrote them."""

from __future__ import annotations

import math

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import check_prefect, params, parse_args, tracked
from flows.runners import describe, task_runner
from spectralgpt.data.preprocess import preprocess
from spectralgpt.stages.preprocess import (corpus_dir, part_job, preprocess_job, quarantine_path, quarantine_report,
                                           splits_of)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, task_run_name="shards-{name}-{split}-{shards}")
def write_shards(name: str, split: str | None, shards: list[int], job: dict, spec: dict | None = None) -> dict:
    """Write `shards` of one corpus from `job` (a `part_job` holding their samples); returns the settings they were
    written with (shard 0's task settles them)."""
    return preprocess(**job, workers=1, shards=shards, finalize=False, spec=spec).spec


@task(cache_policy=NO_CACHE, retries=1, task_run_name="assemble-{name}-{split}")
def assemble(name: str, split: str | None, job: dict, spec: dict) -> dict:
    result = preprocess(**job, workers=1, shards=[], spec=spec)
    return {"items": result.n_items, "shards": result.n_shards, "quarantined": len(result.quarantine),
            "content_digest": result.manifest["content_digest"]}


@task(cache_policy=NO_CACHE, task_run_name="quarantine-{name}")
def report(p, name: str) -> dict:
    q = quarantine_report(p, name)
    return {"total": q.total, "bad": len(q), "counts": q.counts()}


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
        corpora = [(name, split) for name in p.data.sources for split in splits_of(p, name)]
        jobs = {key: preprocess_job(p, *key) for key in corpora}  # each corpus listed once, here
        # shard 0 of every corpus first, all at once: its first usable sample settles the corpus' settings
        first = {key: write_shards.submit(*key, [0], part_job(jobs[key], [0])) for key in corpora}
        rest, specs = {}, {}
        for key in corpora:
            specs[key] = first[key].result()
            shards = [[j] for j in range(1, math.ceil(specs[key]["n"] / specs[key]["shard_size"]))]
            rest[key] = write_shards.map(unmapped(key[0]), unmapped(key[1]), shards,
                                         [part_job(jobs[key], s) for s in shards], unmapped(specs[key]))
        for key in corpora:  # a Dask worker keeps a task's arguments while its future lives: drop each once done
            futures = rest.pop(key)
            while futures:
                futures.pop(0).result()
        done = {key: assemble.submit(*key, part_job(jobs[key], []), specs[key]) for key in corpora}
        del jobs
        summary = {}
        for (name, split), future in done.items():
            k = name if split is None else f"{name}/{split}"
            summary[k] = future.result()
            run.log_metrics({f"{k}.items": summary[k]["items"], f"{k}.shards": summary[k]["shards"]})
            log.info("%s: %s", k, summary[k])
            run.log_artifacts([corpus_dir(p, name, split) / f for f in ("manifest.json", "stats.json",
                                                                          "quarantine.json")], f"shards/{k}")
        for name in p.data.sources:  # the whole corpus' report; refuses it over ingest.max_bad_fraction
            q = report(p, name)  # in the flow's process, which has read the ingest manifest already
            run.log_metrics({f"{name}.quarantined": q["bad"]})
            run.log_artifacts([quarantine_path(p, name), quarantine_path(p, name).with_suffix(".csv")], "quarantine")
    return summary


if __name__ == "__main__":
    check_prefect()
    preprocess_flow(parse_args(__doc__).params)
