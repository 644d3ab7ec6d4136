"""`make demo`: the whole pipeline on the embedded default. Synthetic Sentinel-2 corpus into data/raw (tracked
by data.dvc, pushed to the local DVC remote), Prefect's local server, MLflow on SQLite, then the retrain flow:
`dvc repro` through every stage, registration and promotion of the four task models. Prints where to look."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from flows.timing import STAGE_TIMES_ENV, Stopwatch, busy_seconds, cpu_seconds, read_stage_times

PREFECT_PORT = int(os.environ.get("SPECTRALGPT_PREFECT_PORT", "4200"))
JOBS = 2  # independent stages (fine-tunings, evaluations, the benchmark) run two at a time, sharing the cores
STAGE_TIMES = Path(".dvc/tmp/demo-stage-times.jsonl")  # ignored by git and DVC


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def dvc(*args: str) -> subprocess.CompletedProcess:
    return sh(sys.executable, "-m", "dvc", *args)


@contextlib.contextmanager
def prefect_server():
    """Prefect's local server on loopback for the duration of the demo (reused if PREFECT_API_URL names one). It
    starts on entry and yields `ready`, which waits until it answers: the demo builds and pushes its corpus while
    the server boots (~10-20 s of imports and database migrations on 2 cores)."""
    if os.environ.get("PREFECT_API_URL"):
        yield lambda: os.environ["PREFECT_API_URL"]
        return
    url = f"http://127.0.0.1:{PREFECT_PORT}/api"
    home = Path(os.environ.setdefault("PREFECT_HOME", str(Path(".prefect").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(PREFECT_PORT)], stdout=log, stderr=subprocess.STDOUT)

    def ready() -> str:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"Prefect server did not start on {url} (see {log.name})") from None
                time.sleep(0.5)
        os.environ["PREFECT_API_URL"] = url
        print(f"Prefect server on {url}", flush=True)
        return url

    try:
        yield ready
    finally:
        if os.environ.get("PREFECT_API_URL") == url:
            drain_prefect()
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        log.close()
        os.environ.pop("PREFECT_API_URL", None)  # later steps run without it, not against a stopped server


def drain_prefect() -> None:
    """Send the flow logs and events this process still queues before its server stops (else they fail at exit
    with "Error logging to API")."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=10)


def main() -> None:
    from spectralgpt.config import load_params

    watch = Stopwatch()
    p = load_params("params.yaml")
    if not Path(".git").exists():
        sh("git", "init", "-q")
    times = STAGE_TIMES.resolve()
    times.parent.mkdir(parents=True, exist_ok=True)
    times.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:  # the server stops (and its CPU is counted) when the block ends
        server_ready = stack.enter_context(prefect_server())  # boots while the corpus is built and pushed
        with watch("synthetic corpus (Prefect server booting)"):
            if not Path(p.data.raw).exists():
                sh(sys.executable, "-m", "spectralgpt.cli", "data", "synth")
        with watch("dvc add + push"):
            if Path("data.dvc").exists():
                dvc("commit", "-f", "-q", "data.dvc")  # no-op when the corpus matches data.dvc (byte-identical)
            else:  # `dvc add` writes data/raw.dvc; the project keeps it as data.dvc at the top
                dvc("add", "-q", p.data.raw)
                generated = Path(p.data.raw).parent / (Path(p.data.raw).name + ".dvc")
                Path("data.dvc").write_text(generated.read_text().replace("path: raw", f"path: {p.data.raw}"))
                generated.unlink()
            dvc("push", "-q")
        with watch("Prefect server: rest of its start"):
            server_ready()
        os.environ[STAGE_TIMES_ENV] = str(times)  # every stage `dvc repro` runs appends its wall and CPU seconds
        from flows.retrain import retrain_flow

        t0, c0 = time.perf_counter(), cpu_seconds()
        result = retrain_flow("params.yaml", jobs=JOBS)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        stages = read_stage_times(times)
        watch.add(f"retrain flow ({JOBS} lanes), of which:", wall, cpu)
        for row in stages:
            threads = row.get("threads")
            label = f"{row['stage']} ({threads} thread{'s' if threads != '1' else ''})" if threads else row["stage"]
            watch.add(f"  {label}", row["wall_s"], row["cpu_s"])
        watch.add("  the rest, while no stage ran (dvc, promotion, report)", wall - busy_seconds(stages),
                  cpu - sum(r["cpu_s"] for r in stages))
    with watch("offline plots, metrics, status"):
        sh(sys.executable, "-m", "flows.plots")
        dvc("metrics", "show")
        clean = subprocess.run([sys.executable, "-m", "dvc", "status", "-q"]).returncode == 0
    print("\nDone. Where to look:")
    print("  reports/<task>/metrics.json, reports/plots/index.html   (offline; `dvc metrics show`, `dvc plots show`)")
    print("  make ui   -> Prefect UI http://127.0.0.1:4200 and MLflow UI http://127.0.0.1:5000 (loopback)")
    print("  spectralgpt models   -> champion and challenger per task")
    for d in result["decisions"]:
        print(f"  {d.get('task')}: {d.get('decision')} ({d.get('reason', '')})")
    print("  dvc status:", "clean, a second `dvc repro` is a no-op" if clean else "changes pending (see `dvc status`)")
    print(f"\nWhere the time went ({os.cpu_count()} CPUs; CPU s: all processes, threads summed):")
    print(watch.table())


if __name__ == "__main__":
    main()
