"""`dvc repro` in parallel lanes: independent stages (the four fine-tunings, the evaluations, the benchmark) run
side by side, up to `jobs` at a time, each as ``dvc repro --single-item <stage>`` once the stages it depends on are
done, as DVC's guide to parallel stage execution describes. DVC still decides per stage whether it is stale and
writes dvc.lock; the stages to consider are the stale ones (``dvc status``) and everything downstream of them,
nothing else can have changed. Lanes never share the cores: a stage launched beside others gets
``OMP_NUM_THREADS = cpus // lanes`` (on 2 cores two 1-thread runs of the demo's classifier step train x1.23 as
fast together as one 2-thread run, two 2-thread runs x0.58: `benchmarks/lanes.py`), one launched alone gets every
core.

DVC releases its repository lock while a stage's command runs and keeps read/write locks on the stage's
dependencies and outputs, so stages that write different outputs can run at once; ``--wait-for-lock`` makes a
stage wait for the short moments another holds the repository lock (collecting stages, writing dvc.lock) instead
of failing. When a stage fails, no new stage starts, the running ones finish, and the error names it.

Order: a ready stage that heads the longest chain of work still to do starts first, by the run time each stage
declares in dvc.yaml (``meta: {seconds: N}``, about how long it takes; DVC ignores ``meta``, so a new estimate never
makes a stage stale; 1 where none is given), dvc.yaml's order breaking ties. On the demo this starts the longest
fine-tuning, segmentation, first instead of third, so that the lanes finish together.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed

THREADS_ENV = "OMP_NUM_THREADS"  # torch's intra-op threads (and MKL's, through OpenMP) in the stage process


@dataclass(frozen=True)
class Stage:
    name: str  # DVC's address: ``finetune@classification``
    upstream: tuple[str, ...]  # the pipeline stages whose outputs it reads
    seconds: float = 1.0  # about how long it runs (dvc.yaml ``meta: {seconds: N}``): a scheduling hint only


def expected_seconds(stage) -> float:
    """A DVC stage's ``meta.seconds`` (1 without one); refuses anything but a finite number >= 0."""
    meta = stage.meta if isinstance(stage.meta, dict) else {}
    value = meta.get("seconds", 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"stage {stage.addressing}: meta.seconds must be a number of seconds >= 0 (about how long "
                         f"the stage runs), got {value!r}")
    return float(value)


def pipeline(root: str | os.PathLike = ".") -> list[Stage]:
    """The pipeline stages of dvc.yaml (``.dvc`` files are data, not stages to run), upstream first."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    with Repo(os.fspath(root)) as repo:
        graph = repo.index.graph  # an edge runs from a stage to each stage whose outputs it depends on
        position = {s: i for i, s in enumerate(repo.index.stages)}  # dvc.yaml's order breaks the ties
        order = nx.lexicographical_topological_sort(graph.reverse(copy=False), key=position.__getitem__)
        return [Stage(s.addressing, tuple(u.addressing for u in graph.successors(s) if isinstance(u, PipelineStage)),
                      expected_seconds(s)) for s in order if isinstance(s, PipelineStage)]


def affected(stages: list[Stage], stale: list[str]) -> list[Stage]:
    """The stale stages and every stage downstream of one, in pipeline order: a stage outside this set has the
    same dependencies, parameters and command as when dvc.lock recorded it."""
    hit = set(stale)
    for s in stages:  # upstream first, so one pass reaches every descendant
        if hit.intersection(s.upstream):
            hit.add(s.name)
    return [s for s in stages if s.name in hit]


def critical_path(stages: list[Stage]) -> dict[str, float]:
    """For each stage, the seconds of work on the longest chain that starts with it and runs through its
    dependants among `stages` (its own `seconds` plus its longest dependant's): the lanes start the stages that
    hold up the most work first."""
    path, after = {}, {}  # stage -> its chain; stage -> the longest chain of its dependants
    for s in reversed(stages):  # dependants first
        path[s.name] = s.seconds + after.get(s.name, 0.0)
        for u in s.upstream:
            after[u] = max(after.get(u, 0.0), path[s.name])
    return path


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask, as a container or taskset sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def stream_dvc(*args: str, env: dict | None = None) -> int:
    """Run ``python -m dvc <args>`` with its output lines in the current Prefect run's log (progress bars stay in
    the stages' own logs); returns its exit code."""
    log = get_run_logger()
    proc = subprocess.Popen([sys.executable, "-m", "dvc", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **(env or {})})
    for line in proc.stdout:
        if line.strip() and "%|" not in line:
            log.info(line.rstrip())
    return proc.wait()


@task(cache_policy=NO_CACHE, task_run_name="repro-{stage}")
def repro_stage(stage: str, threads: int) -> str:
    """``dvc repro --single-item <stage>`` with `threads` threads; its output goes to this task's log."""
    args = ("--wait-for-lock", "repro", "--single-item", stage)
    get_run_logger().info("dvc %s (%s=%d)", " ".join(args), THREADS_ENV, threads)
    if code := stream_dvc(*args, env={THREADS_ENV: str(threads)}):
        raise RuntimeError(f"dvc repro --single-item {stage} failed with exit code {code}")
    return stage


def run_lanes(stages: list[Stage], jobs: int, cpus: int | None = None) -> list[str]:
    """Run `stages` (pipeline order, as `affected` returns them) in up to `jobs` lanes; returns the stage names
    in the order they finished. A stage starts once its upstream stages are done and a core is free (those with
    the longest chain of work first, `critical_path`, then in pipeline order); it gets an
    equal share of the cores among the lanes that can be busy (the running stages and the ready ones, at most
    `jobs`), never more than are free. Raises RuntimeError naming the failed stages; the stages that completed
    are kept in dvc.lock."""
    log = get_run_logger()
    cpus = cpus or cpu_count()
    todo = {s.name: s for s in stages}
    chain = critical_path(stages)
    rank = {s.name: (-chain[s.name], i) for i, s in enumerate(stages)}  # longest chain first, then pipeline order
    done: list[str] = []
    failed: dict[str, BaseException] = {}
    running: dict = {}  # future -> (stage name, threads)
    while todo or running:
        waiting = set(todo) | {name for name, _ in running.values()}  # not done yet
        ready = [] if failed else sorted((n for n, s in todo.items() if not waiting.intersection(s.upstream)),
                                         key=rank.__getitem__)
        while ready and len(running) < jobs:
            free = cpus - sum(t for _, t in running.values())
            if free < 1:
                break
            threads = min(free, max(1, cpus // min(jobs, len(running) + len(ready))))
            name = ready.pop(0)
            del todo[name]
            running[repro_stage.submit(name, threads)] = (name, threads)
        if not running:
            break
        future = next(as_completed(list(running)))
        name, _ = running.pop(future)
        try:
            future.result()
            done.append(name)
        except Exception as e:  # noqa: BLE001 - reported below, after the running stages finish
            failed[name] = e
            log.error("stage %s failed (%s); starting no new stage", name, e)
    if failed:
        raise RuntimeError(f"stage(s) {', '.join(failed)} failed; {len(done)} completed and are kept in dvc.lock"
                           f"{'; not started: ' + ', '.join(todo) if todo else ''} (run the retrain flow or "
                           "`dvc repro` again to resume)")
    return done
