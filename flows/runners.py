"""The Prefect task runner a stage's params ask for (``<stage>.runner``): threads or processes on this machine,
or prefect-dask's DaskTaskRunner on a Dask cluster (a local one of worker processes when no address is given).

prefect-dask is an optional dependency (``pip install 'spectralgpt[dask]'``), imported only when asked for.
"""

from __future__ import annotations

from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from spectralgpt.config import RunnerConfig


def task_runner(cfg: RunnerConfig, workers: int):
    """A fresh task runner for `cfg`; `workers` is the stage's own worker count (used when cfg.workers is null)."""
    n = cfg.workers or workers
    if cfg.kind == "threads":
        return ThreadPoolTaskRunner(max_workers=n)
    if cfg.kind == "processes":
        return ProcessPoolTaskRunner(max_workers=n)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RuntimeError("runner kind 'dask' needs prefect-dask: pip install 'spectralgpt[dask]'") from e
    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    # one single-threaded worker process per worker, on the loopback interface, no dashboard server, and so no
    # statistical profiler in the workers: its samples are only ever shown on a dashboard, and each worker keeps
    # the last 1,000 seconds of them (`distributed.admin.low-level-log-length` one-second cycles), tens of MiB
    # that grow with the run's length up to that cap (benchmarks/preprocess_scale.py, README). `config` goes to
    # each worker's nanny, which merges it into Dask's config one top-level key deep: hence one dotted key
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": True,
                                          "host": "127.0.0.1", "dashboard_address": None,
                                          "config": {"distributed.worker.profile.enabled": False}})


def describe(cfg: RunnerConfig, workers: int) -> str:
    """One line for the logs: what runs the tasks."""
    n = cfg.workers or workers
    if cfg.kind == "dask":
        return f"dask cluster at {cfg.address}" if cfg.address else f"local dask cluster of {n} worker processes"
    return f"{n} {cfg.kind}"
