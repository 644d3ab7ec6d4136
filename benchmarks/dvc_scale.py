"""DVC at corpus scale: loose GeoTIFFs vs tar shards of them (`spectralgpt data pack`).

For N small GeoTIFFs (default 10k; --large adds 100k) it times, per layout: `dvc add`, `dvc status` with
nothing changed, `dvc push` to a local remote folder, and ingest's listing (`load_dataset("folder", ...)`,
which reads only tar headers). Figures are extrapolated linearly to 1M images (for the tars an upper bound: a
second or so of each DVC command is its start-up, which does not grow). Run:

    python benchmarks/dvc_scale.py [--n 10000] [--large] [--members 1000]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from spectralgpt.data import load_dataset
from spectralgpt.data.pack import pack

log = logging.getLogger("dvc_scale")
BANDS = ("B2", "B3", "B4", "B8")


def write_corpus(root: Path, n: int) -> None:
    """n 4-band 8x8 uint16 GeoTIFFs (~1 KB each) in 100 folders."""
    rng = np.random.default_rng(0)
    prof = dict(driver="GTiff", height=8, width=8, count=4, dtype="uint16")
    for k in range(n):
        p = root / f"d{k % 100:02d}" / f"img-{k:07d}.tif"
        p.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(p, "w", **prof) as dst:
            dst.write(rng.integers(1, 4000, (4, 8, 8), dtype=np.uint16))
            dst.descriptions = BANDS


def timed(cmd, cwd) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    return time.perf_counter() - t


def measure(repo: Path, data: str) -> dict:
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*dvc, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*dvc, "remote", "add", "-d", "local", str(repo.parent / f"{repo.name}-remote")], cwd=repo,
                   check=True)
    out = {"add": timed([*dvc, "add", "-q", data], repo), "status": timed([*dvc, "status", "-q"], repo),
           "push": timed([*dvc, "push", "-q"], repo)}
    t = time.perf_counter()
    out["n_listed"] = len(load_dataset("folder", repo / data, bands=None))
    out["listing"] = time.perf_counter() - t
    return out


def run(n: int, members: int, tmp: Path) -> None:
    loose = tmp / f"loose-{n}"
    write_corpus(loose / "data", n)
    packed = tmp / f"tars-{n}"
    t = time.perf_counter()
    r = pack(loose / "data", packed / "data", members=members)
    t_pack = time.perf_counter() - t
    a, b = measure(loose, "data"), measure(packed, "data")
    scale = 1_000_000 / n
    print(f"\n{n} images ({len(r.tars)} tars of {members}; pack took {t_pack:.1f} s)")
    print("| step | loose files | tar shards | ratio | loose @1M (linear) | tars @1M (linear: an upper bound) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k in ("add", "status", "push", "listing"):
        print(f"| {k} | {a[k]:.2f} s | {b[k]:.2f} s | x{a[k] / b[k]:.1f} | {a[k] * scale:.0f} s | "
              f"{b[k] * scale:.0f} s |")
    assert a["n_listed"] == b["n_listed"] == n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--large", action="store_true", help="also 100k images")
    ap.add_argument("--members", type=int, default=1000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        for n in [args.n] + ([100_000] if args.large else []):
            run(n, args.members, Path(tmp))


if __name__ == "__main__":
    main()
