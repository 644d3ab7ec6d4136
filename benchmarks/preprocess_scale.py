"""Preprocessing on a local Dask cluster vs the process pool, and worker memory at 10k and 100k images.

Both cases run what a user runs, on the same ingested corpus of real GeoTIFFs (the folder reader: rasterio per
file, the pixel checks and the content digest of each sample where it is decoded, once):

  pool-<n>  ``spectralgpt data preprocess`` (`stages.preprocess.preprocess_all`): the driver writes shard 0, a
            process pool of ``preprocess.workers`` (forked) the rest, then the assembly and the quarantine report;
  dask-<n>  the preprocess flow (``python -m flows.preprocess``, `flows.preprocess.preprocess_flow`, MLflow stage run
            included) with ``preprocess.runner: {kind: dask, address: <cluster>}`` on a ``distributed.LocalCluster``
            made with the very keyword arguments that ``{kind: dask, workers: W}`` (null address) gives
            prefect-dask, started before the clock so that each worker can be asked for its own getrusage; the
            cluster's start, the workers' imports and a first Prefect task in each, Prefect's temporary server and
            the MLflow store's creation are left out of the figures (a long-lived cluster and server have done
            them before the corpus arrives).

<n> is 10k or 100k images: --base (10,000) synthetic 12-band GeoTIFFs (pretrain layout, --size px), and for 100k
the same files hard-linked ten times under other names (ten times the files to list, check and decode; the pixels
repeat, which changes neither the work per file nor the memory). Each corpus is ingested once (the library's
ingest, not timed) and each case runs in a fresh subprocess that prints one JSON line: wall seconds, images/s, CPU
seconds of the driver and of the workers, peak RSS of the driver and of each worker (ru_maxrss: for the pool the
largest of its processes, RUSAGE_CHILDREN, which counts the pages a forked worker shares with the driver; for Dask
each worker's own, asked inside it, with its peak before any work and its RSS once the flow is done: a lifetime
peak set by the imports hides growth below it), and the corpus' content digest. The summary
prints the Dask/pool throughput ratio per size, whether the two runners wrote the same corpus (content digest),
and each runner's worker peak RSS at 100k over 10k.

    python benchmarks/preprocess_scale.py [--workers 2] [--size 16] [--shard-size 1024]
                                          [--cases pool-10k,dask-10k,pool-100k,dask-100k] [--base 10000]

noop-<n> (not run by default) runs, on the same kind of cluster, as many Prefect tasks as dask-<n> has shards, each
doing nothing: the workers' growth that comes from the engine (Prefect's task runs on Dask), not from the data.
profiled-<n> (not run by default) is dask-<n> on workers with Dask's default config, the statistical profiler on
(the runner's own cluster turns it off): what the profiler's history costs a worker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from prefect import flow, task

REPO = Path(__file__).resolve().parents[1]


def _usage() -> dict:
    """This process' peak RSS (MiB), its RSS now and its CPU seconds."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"rss_mb": r.ru_maxrss / 1024, "rss_now_mb": psutil.Process().memory_info().rss / 2**20,
            "cpu_s": r.ru_utime + r.ru_stime}


def _warm() -> None:
    """Import what a task needs, once per worker (a long-lived cluster has done so before the corpus arrives)."""
    import flows.preprocess  # noqa: F401
    import spectralgpt.data.sources  # noqa: F401


@task
def _noop(i: int) -> int:
    time.sleep(0.5)
    return os.getpid()


@task
def _empty(i: int) -> int:
    return i


@flow(name="no-op")
def _noop_flow(n: int) -> int:
    """`n` Prefect tasks that do nothing, futures dropped as they finish (as the preprocess flow's shard tasks)."""
    futures = _empty.map(range(n))
    while futures:
        futures.pop(0).result()
    return n


@flow(name="warm-up")
def _warm_flow(n: int) -> list[int]:
    """Each worker runs a Prefect task before the corpus arrives (its Prefect client and settings, as on a cluster
    that has run tasks before)."""
    return [f.result() for f in _noop.map(range(n))]


def _params(tmp: Path, count: str, size: int, shard_size: int, workers: int, shards: str) -> dict:
    """params.yaml with the one pretraining corpus of `count` images, absolute paths, a store in `tmp`."""
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    ws = tmp / f"ws-{count}"
    p["data"].update(raw=str(tmp / f"tif-{count}"), interim=str(ws / "interim"), shards=str(ws / shards),
                     sources={"pretrain": {"kind": "folder", "root": str(tmp / f"tif-{count}")}})
    p["ingest"]["workers"] = workers
    p["preprocess"].update(size=size, sizes={"pretrain": size}, shard_size=shard_size, workers=workers)
    p["finetune"] = {}
    p["tracking"] = {"uri": f"sqlite:///{tmp}/mlflow.db", "artifacts": str(tmp / "mlartifacts"),
                     "experiment": "preprocess-scale"}
    return p


def _load(p: dict, path: Path):
    from spectralgpt.config import load_params

    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return load_params(path)


def _child(case: str, workdir: str, workers: int, size: int, shard_size: int) -> None:
    sys.path.insert(0, str(REPO))
    kind, count = case.split("-")
    tmp = Path(workdir)
    p = _params(tmp, count, size, shard_size, workers, f"shards-{kind}")
    row = {"case": case, "workers": workers}
    if kind == "pool":
        from spectralgpt.stages.preprocess import preprocess_all

        params = _load(p, tmp / f"ws-{count}" / "params-pool.yaml")
        start = _usage()
        t = time.perf_counter()
        r = preprocess_all(params)["pretrain"][None]
        wall = time.perf_counter() - t
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        row.update(n=r.n_samples, items=r.n_items, content_digest=r.manifest["content_digest"][:16],
                   driver_cpu_s=round(_usage()["cpu_s"] - start["cpu_s"], 1),
                   worker_cpu_s=round(kids.ru_utime + kids.ru_stime, 1),
                   peak_rss_worker_mb=[round(kids.ru_maxrss / 1024, 1)])  # the largest of the pool's processes
    elif kind in ("dask", "noop", "profiled"):
        from distributed import Client, LocalCluster
        from prefect.settings import PREFECT_API_URL
        from prefect_dask import DaskTaskRunner
        from prefect.testing.utilities import prefect_test_harness

        from flows.common import tracked
        from flows.preprocess import preprocess_flow
        from flows.runners import task_runner
        from spectralgpt.config import RunnerConfig

        local = task_runner(RunnerConfig(kind="dask", workers=workers), workers)  # what a null address starts
        kwargs = dict(local.cluster_kwargs)
        if kind == "profiled":  # Dask's default worker config: the statistical profiler on
            kwargs.pop("config")
        t = time.perf_counter()
        with prefect_test_harness(server_startup_timeout=180):
            os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()  # the workers report their task runs to it
            with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
                client.run(_warm)
                _warm_flow.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))(2 * workers)
                p["preprocess"]["runner"] = {"kind": "dask", "address": cluster.scheduler_address}
                path = tmp / f"ws-{count}" / "params-dask.yaml"
                with tracked(_load(p, path), "warm-up", {}):  # creates the MLflow store (its migrations)
                    pass
                row["setup_s"] = round(time.perf_counter() - t, 1)  # server, cluster, imports: not in the figures
                before, start = client.run(_usage), _usage()
                t = time.perf_counter()
                if kind in ("dask", "profiled"):
                    out = preprocess_flow(str(path))["pretrain"]
                else:  # as many Prefect tasks as the shards, each doing nothing: the engine's own cost per task
                    tasks = -(-_n_good(tmp, count) // shard_size)
                    out = {"items": tasks, "content_digest": "-" * 16}
                    _noop_flow.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))(tasks)
                wall = time.perf_counter() - t
                after = client.run(_usage)
        row.update(n=_n_good(tmp, count),
                   items=out["items"], content_digest=out["content_digest"][:16],
                   driver_cpu_s=round(_usage()["cpu_s"] - start["cpu_s"], 1),
                   worker_cpu_s=round(sum(after[w]["cpu_s"] - before[w]["cpu_s"] for w in after), 1),
                   rss_worker_before_mb=[round(before[w]["rss_mb"], 1) for w in sorted(before)],
                   peak_rss_worker_mb=[round(after[w]["rss_mb"], 1) for w in sorted(after)],
                   rss_worker_now_mb=[round(after[w]["rss_now_mb"], 1) for w in sorted(after)])
    else:
        raise SystemExit(f"unknown case {case!r}")
    row.update(wall_s=round(wall, 1), images_per_s=round(row["n"] / wall, 1),
               peak_rss_driver_mb=round(_usage()["rss_mb"], 1))
    print(json.dumps(row))


def _n_good(tmp: Path, count: str) -> int:
    return len(json.loads((tmp / f"ws-{count}/interim/pretrain/manifest.json").read_text())["good"])


def _corpus(tmp: Path, size: int, shard_size: int, workers: int, counts: list[str], base: int) -> None:
    from spectralgpt.data.synthetic import generate
    from spectralgpt.stages.ingest import ingest

    t = time.perf_counter()
    generate("pretrain", tmp / "tif-10k", n=base, size=size, workers=workers)
    print(f"generated {base:,} synthetic 12-band GeoTIFFs ({size} px) in {time.perf_counter() - t:.0f} s", flush=True)
    if "100k" in counts:
        files = sorted((tmp / "tif-10k").rglob("*.tif"))
        for k in range(10):
            d = tmp / "tif-100k" / f"copy-{k}"
            d.mkdir(parents=True)
            for f in files:
                os.link(f, d / f.name)
        print(f"linked them ten times: {10 * len(files):,} files", flush=True)
    for count in counts:
        t = time.perf_counter()
        m = ingest(_load(_params(tmp, count, size, shard_size, workers, "-"), tmp / f"ws-{count}.yaml"))["pretrain"]
        print(f"ingested {count}: {m['n_good']:,} of {m['n_listed']:,} pass the cheap checks "
              f"({time.perf_counter() - t:.0f} s)", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--shard-size", type=int, default=1024)
    ap.add_argument("--cases", default="pool-10k,dask-10k,pool-100k,dask-100k")
    ap.add_argument("--base", type=int, default=10_000, help="images of the 10k cases (a smaller run to try it)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return _child(a.child, a.workdir, a.workers, a.size, a.shard_size)
    sys.path.insert(0, str(REPO))
    cases = a.cases.split(",")
    counts = sorted({c.split("-")[1] for c in cases}, key=len)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {a.workers} workers, {a.size} px, shards of {a.shard_size}", flush=True)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "ws-10k").mkdir()
        (Path(tmp) / "ws-100k").mkdir()
        _corpus(Path(tmp), a.size, a.shard_size, a.workers, counts, a.base)
        for case in cases:
            out = subprocess.run([sys.executable, __file__, "--child", case, "--workdir", tmp, "--workers",
                                  str(a.workers), "--size", str(a.size), "--shard-size", str(a.shard_size)],
                                 capture_output=True, text=True, cwd=REPO)
            if out.returncode:
                sys.exit(f"{case} failed:\n{out.stderr[-4000:]}")
            rows[case] = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(rows[case]), f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    for n in counts:
        pool, dask = rows.get(f"pool-{n}"), rows.get(f"dask-{n}")
        if pool and dask:
            same = "the same" if pool["content_digest"] == dask["content_digest"] else "DIFFERENT"
            print(f"{n}: dask / pool throughput = {dask['images_per_s'] / pool['images_per_s']:.2f}; CPU s (driver + "
                  f"workers): dask {dask['driver_cpu_s']} + {dask['worker_cpu_s']}, pool {pool['driver_cpu_s']} + "
                  f"{pool['worker_cpu_s']}; {same} corpus digest ({dask['content_digest']}, {pool['content_digest']})")
    for kind in ("pool", "dask", "noop", "profiled"):  # noop: the Dask workers' growth from Prefect's tasks alone
        small, big = rows.get(f"{kind}-10k"), rows.get(f"{kind}-100k")
        if small and big:
            s, b = max(small["peak_rss_worker_mb"]), max(big["peak_rss_worker_mb"])
            now = ""
            if "rss_worker_now_mb" in small:  # Dask: what each worker still holds once the flow is done
                now = (f"; worker RSS after the flow {max(small['rss_worker_now_mb']):.0f} MiB at 10k, "
                       f"{max(big['rss_worker_now_mb']):.0f} MiB at 100k")
            print(f"{kind}: worker peak RSS {s:.0f} MiB at 10k, {b:.0f} MiB at 100k (x{b / s:.2f}){now}; driver "
                  f"{small['peak_rss_driver_mb']:.0f} -> {big['peak_rss_driver_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
