"""Load and abuse a served model: `mlflow models serve` on 127.0.0.1 under a bounded number of concurrent clients
for a bounded time, then a batch of bad requests while good ones keep flowing.

    python benchmarks/serve_load.py                                  # registers a tiny classifier in a temp store
    python benchmarks/serve_load.py --clients 8 --duration 30 --batch 4
    python benchmarks/serve_load.py --model models:/spectralgpt-classification@champion   # MLFLOW_TRACKING_URI set

Reported (one JSON object on stdout; `--json-out` writes it to a file too):

* load phase: requests/s, images/s, p50/p90/p99 latency, errors, the server's resident memory (the serving
  process and its children, psutil) sampled over time;
* abuse phase: each bad request (wrong band count, NaN, a batch over the server's limit, bad JSON, paths outside
  the allowed roots, URLs, a non-raster inside the roots, a DataFrame without `path`) with its HTTP status and
  message; each must be a 4xx with a clear message, no URL may be fetched (a loopback HTTP server counts
  requests), and the good requests sent meanwhile must all succeed;
* afterwards: the server still answers.

Everything is bounded: clients <= 64, duration <= 600 s, requests per client <= --max-requests, each request has
a timeout, and the server is stopped at the end (also on error or Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import requests

log = logging.getLogger("serve_load")

MAX_CLIENTS = 64
MAX_DURATION = 600.0
SERVER_MAX_BATCH = 8  # SPECTRALGPT_SERVE_MAX_BATCH given to the server


# ------------------------------------------------------------------------------------------- the model


def register_tiny_model(workdir: Path) -> tuple[str, str, int]:
    """A tiny random classifier registered in a fresh SQLite store under `workdir`: (model URI, tracking URI, img)."""
    import mlflow
    import torch

    from spectralgpt.models import create_model, save_model
    from spectralgpt.tracking import register

    uri = f"sqlite:///{workdir}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    torch.manual_seed(0)
    model = create_model("vit_tiny_patch8_64", num_classes=3, depth=1)
    folder = save_model(model, workdir / "model", normalization={"name": "minmax", "eps": 1e-10},
                        extra={"task": "classification", "class_names": ["a", "b", "c"]})
    rv = register("classification", folder, {"overall_accuracy": 0.5}, "serve-load", artifacts=workdir / "artifacts")
    return f"models:/spectralgpt-classification/{rv.version}", uri, 64


def write_geotiff(path: Path, size: int, seed: int = 0) -> Path:
    import rasterio

    from spectralgpt.bands import PRETRAIN_BANDS

    arr = np.random.default_rng(seed).integers(1, 10000, (len(PRETRAIN_BANDS), size, size)).astype("uint16")
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=len(PRETRAIN_BANDS), dtype="uint16",
                       crs="EPSG:32632", transform=rasterio.transform.from_origin(500000, 5000000, 10, 10)) as dst:
        dst.write(arr)
        for i, b in enumerate(PRETRAIN_BANDS, 1):
            dst.set_band_description(i, b)
    return path


# ------------------------------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(model_uri: str, env: dict, cwd: Path, startup_timeout: float = 180.0):
    """`mlflow models serve` on 127.0.0.1:<free port>; yields (base URL, psutil.Process); always stopped."""
    port = free_port()
    env = {**os.environ, **env,
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    log_path = cwd / "server.log"
    with open(log_path, "wb") as server_log:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                                 "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, cwd=cwd, stdout=server_log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited ({proc.returncode}): {log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /ping within {startup_timeout:.0f} s")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        yield base, psutil.Process(proc.pid)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server and the workers it started (its own process group), then wait."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(timeout=10)


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of the server process and all its children (uvicorn workers)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class MemorySampler(threading.Thread):
    def __init__(self, proc: psutil.Process, every: float = 0.5):
        super().__init__(daemon=True)
        self.proc, self.every, self.samples = proc, every, []
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self):
        while not self._halt.is_set():
            self.samples.append((round(time.monotonic() - self._t0, 2), tree_rss(self.proc)))
            self._halt.wait(self.every)

    def stop(self) -> list[tuple[float, int]]:
        self._halt.set()
        self.join(timeout=5)
        return self.samples


@contextlib.contextmanager
def loopback_http():
    """A 127.0.0.1 HTTP server that records each request; yields (base URL, hits)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------- requests


def good_body(batch: int, size: int, seed: int) -> bytes:
    x = np.random.default_rng(seed).integers(0, 10000, (batch, 12, size, size)).astype(np.float32)
    return json.dumps({"inputs": x.tolist()}).encode()


def post(session: requests.Session, base: str, body: bytes, timeout: float = 60.0) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    try:
        r = session.post(f"{base}/invocations", data=body, headers={"Content-Type": "application/json"},
                         timeout=timeout)
        return r.status_code, r.text, time.perf_counter() - t0
    except requests.RequestException as e:
        return 0, f"{type(e).__name__}: {e}", time.perf_counter() - t0


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    images: int = 0


def client_loop(base: str, body: bytes, batch: int, until: float, max_requests: int, stop: threading.Event,
                result: LoadResult, lock: threading.Lock) -> None:
    """Send good requests until `until` (or `stop`, or `max_requests`); record latencies and failures."""
    with requests.Session() as session:
        for _ in range(max_requests):
            if stop.is_set() or time.monotonic() >= until:
                return
            status, text, dt = post(session, base, body)
            with lock:
                if status == 200 and '"predictions"' in text:
                    result.latencies.append(dt)
                    result.images += batch
                else:
                    result.errors.append(f"{status}: {text[:200]}")


def run_load(base: str, clients: int, duration: float, batch: int, size: int, max_requests: int) -> LoadResult:
    result, lock, stop = LoadResult(), threading.Lock(), threading.Event()
    until = time.monotonic() + duration
    bodies = [good_body(batch, size, seed) for seed in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client_loop, base, bodies[i], batch, until, max_requests, stop, result, lock)
                   for i in range(clients)]
        for f in futures:
            f.result()
    return result


def bad_requests(size: int, roots: Path, url_base: str) -> list[tuple[str, bytes, str]]:
    """(name, JSON body, a phrase the refusal must contain)."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 10000, (1, 12, size, size)).astype(np.float32)
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan

    def table(paths):
        return json.dumps({"dataframe_split": {"columns": ["path"], "data": [[p] for p in paths]}}).encode()

    notes = roots / "notes.tif"
    notes.write_text("root:x:0:0:not-a-raster\n")
    return [
        ("wrong band count", json.dumps({"inputs": x[:, :10].tolist()}).encode(), "10 bands"),
        ("NaN pixels", json.dumps({"inputs": nan.tolist()}).encode(), "NaN"),
        ("huge batch", json.dumps({"inputs": np.repeat(x, SERVER_MAX_BATCH + 1, 0).tolist()}).encode(),
         "over this server's limit"),
        ("bad JSON", b'{"inputs": [[[1, 2,', "json"),
        ("path outside the roots", table(["/etc/passwd"]), "outside the server's allowed roots"),
        ("relative escape", table([str(roots / ".." / ".." / "etc" / "passwd")]), "outside"),
        ("URL", table([f"{url_base}/scene.tif"]), "URLs and GDAL virtual paths are not read"),
        ("GDAL /vsicurl/", table([f"/vsicurl/{url_base}/scene.tif"]), "URLs and GDAL virtual paths"),
        ("s3 URL", table(["s3://bucket/scene.tif"]), "URLs and GDAL virtual paths"),
        ("non-raster in the roots", table([str(notes)]), "not a GeoTIFF"),
        ("table without path", json.dumps({"dataframe_split": {"columns": ["file"], "data": [["x"]]}}).encode(),
         "needs a `path` column"),
    ]


def run_abuse(base: str, size: int, roots: Path, batch: int) -> dict:
    """Send every bad request while one client keeps sending good ones; returns the findings."""
    result, lock, stop = LoadResult(), threading.Lock(), threading.Event()
    findings = []
    with loopback_http() as (url_base, hits), ThreadPoolExecutor(1) as pool:
        good = pool.submit(client_loop, base, good_body(batch, size, 99), batch, time.monotonic() + 120, 1000,
                           stop, result, lock)
        with requests.Session() as session:
            for name, body, phrase in bad_requests(size, roots, url_base):
                status, text, dt = post(session, base, body)
                message = _message(text)
                ok = 400 <= status < 500 and phrase.lower() in message.lower() and "root:x" not in text
                findings.append({"request": name, "status": status, "refused_clearly": ok,
                                 "seconds": round(dt, 3), "message": message[:300]})
        time.sleep(0.5)  # let the good client overlap the last bad request
        stop.set()
        good.result()
        fetched = list(hits)
    return {"bad": findings, "urls_fetched": fetched, "good_during_abuse": len(result.latencies),
            "good_failures_during_abuse": result.errors}


def _message(text: str) -> str:
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return text
    message = str(body.get("message", body)) if isinstance(body, dict) else str(body)
    # MLflow prefixes our message with "Failed to predict data '<the request>'. Error: "
    return message.split("\nError: ", 1)[-1]


def _percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {}
    a = np.asarray(latencies) * 1000
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 1) for q in (50, 90, 99)}


# --------------------------------------------------------------------------------------------- the run


def run(model_uri: str | None = None, clients: int = 4, duration: float = 10.0, batch: int = 2,
        size: int | None = None, max_requests: int = 10_000, workdir: str | os.PathLike | None = None) -> dict:
    """The whole benchmark; returns the report (see the module docstring)."""
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be in [1, {MAX_CLIENTS}], got {clients}")
    if not 0 < duration <= MAX_DURATION:
        raise ValueError(f"duration must be in (0, {MAX_DURATION}] seconds, got {duration}")
    if not 1 <= batch <= SERVER_MAX_BATCH:
        raise ValueError(f"batch must be in [1, {SERVER_MAX_BATCH}] (the server's limit), got {batch}")
    with contextlib.ExitStack() as stack:
        work = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="serve-")))
        work.mkdir(parents=True, exist_ok=True)
        env = {"MLFLOW_DISABLE_TELEMETRY": "true"}
        if model_uri is None:
            model_uri, tracking, size = register_tiny_model(work)
            env["MLFLOW_TRACKING_URI"] = tracking
        size = size or 64
        roots = work / "allowed"
        roots.mkdir(exist_ok=True)
        write_geotiff(roots / "good.tif", size)
        env.update(SPECTRALGPT_SERVE_ROOTS=str(roots), SPECTRALGPT_SERVE_MAX_BATCH=str(SERVER_MAX_BATCH),
                   SPECTRALGPT_DEVICE=os.environ.get("SPECTRALGPT_DEVICE", "auto"))
        t0 = time.monotonic()
        base, proc = stack.enter_context(serve(model_uri, env, work))
        startup = time.monotonic() - t0
        sampler = MemorySampler(proc)
        sampler.start()
        t1 = time.monotonic()
        load = run_load(base, clients, duration, batch, size, max_requests)
        elapsed = time.monotonic() - t1
        abuse = run_abuse(base, size, roots, batch)
        with requests.Session() as session:
            status, text, _ = post(session, base, good_body(1, size, 7))
            table = json.dumps({"dataframe_split": {"columns": ["path"], "data": [[str(roots / "good.tif")]]}})
            path_status, _, _ = post(session, base, table.encode())
        memory = sampler.stop()
    rss = [m for _, m in memory]
    return {
        "model": model_uri, "clients": clients, "duration_s": round(elapsed, 2), "batch": batch, "img": size,
        "server_startup_s": round(startup, 1),
        "load": {"requests": len(load.latencies), "requests_per_s": round(len(load.latencies) / elapsed, 2),
                 "images_per_s": round(load.images / elapsed, 2), **_percentiles(load.latencies),
                 "errors": len(load.errors), "error_samples": load.errors[:5]},
        "server_rss_mb": {"start": round(rss[0] / 2**20, 1) if rss else None,
                          "max": round(max(rss) / 2**20, 1) if rss else None,
                          "end": round(rss[-1] / 2**20, 1) if rss else None,
                          "samples": [(t, round(m / 2**20, 1)) for t, m in memory[:: max(1, len(memory) // 40)]]},
        "abuse": abuse,
        "after": {"array_request_status": status, "allowed_path_status": path_status,
                  "answering": status == 200 and '"predictions"' in text},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="models:/NAME@ALIAS or /VERSION (needs MLFLOW_TRACKING_URI); default: a tiny "
                                    "classifier registered in a temporary store")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    ap.add_argument("--batch", type=int, default=2, help="images per request")
    ap.add_argument("--size", type=int, default=None, help="image side (default: the tiny model's 64)")
    ap.add_argument("--max-requests", type=int, default=10_000, help="per client")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    report = run(args.model, args.clients, args.duration, args.batch, args.size, args.max_requests)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)
    bad_ok = all(f["refused_clearly"] for f in report["abuse"]["bad"])
    healthy = (report["load"]["errors"] == 0 and not report["abuse"]["good_failures_during_abuse"]
               and not report["abuse"]["urls_fetched"] and report["after"]["answering"])
    return 0 if bad_ok and healthy else 1


if __name__ == "__main__":
    sys.exit(main())
