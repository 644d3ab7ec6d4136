"""Preprocessing throughput and peak memory at 10k and 100k images: memory must not grow with the corpus.

Each case runs in a fresh subprocess (so peak RSS is its own) and reports wall time, images/s per worker
process, the peak RSS of the main process and the largest peak RSS of any worker (getrusage).

Cases:
  tif-10k     10,000 synthetic 12-band 64 px GeoTIFFs (pretrain layout) read with rasterio per sample;
  mem-10k     10,000 in-memory synthetic samples (12 bands, 64 px, random uint16 made from the index);
  mem-100k   100,000 of the same in-memory samples (no GeoTIFFs: writing 100k files would take longer
              than the preprocessing being measured).

    python benchmarks/preprocess_scale.py [--workers 2] [--cases tif-10k,mem-10k,mem-100k]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _child(case: str, workdir: str, workers: int, size: int, shard_size: int):
    sys.path.insert(0, str(REPO))
    import numpy as np
    import rasterio

    from spectralgpt.bands import PRETRAIN_BANDS
    from spectralgpt.data.preprocess import preprocess
    from spectralgpt.data.sample import Sample

    class Memory:
        name = "memory"

        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            rng = np.random.default_rng(i)
            img = rng.integers(0, 10000, (12, size, size), dtype=np.uint16)
            return Sample(id=str(i), image=img, bands=PRETRAIN_BANDS, source=f"mem://{i}")

    class Tifs:
        name = "tifs"

        def __init__(self, root):
            self.files = sorted(Path(root).glob("*.tif"))

        def __len__(self):
            return len(self.files)

        def __getitem__(self, i):
            with rasterio.open(self.files[i]) as d:
                return Sample(id=self.files[i].stem, image=d.read(), bands=tuple(d.descriptions), crs=d.crs,
                              transform=d.transform, source=str(self.files[i]))

    kind, count = case.split("-")
    n = int(count.rstrip("k")) * 1000
    src = Tifs(Path(workdir) / "tif") if kind == "tif" else Memory(n)
    t = time.perf_counter()
    r = preprocess(src, Path(workdir) / f"out-{case}", size=size, shard_size=shard_size, workers=workers,
                   fsync=False)
    wall = time.perf_counter() - t
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"case": case, "n": n, "items": r.n_items, "shards": r.n_shards, "wall_s": round(wall, 1),
                      "images_per_s": round(n / wall, 1), "images_per_s_per_process": round(n / wall / workers, 1),
                      "peak_rss_main_mb": round(own, 1), "peak_rss_worker_mb": round(kids, 1)}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--shard-size", type=int, default=1024)
    ap.add_argument("--cases", default="tif-10k,mem-10k,mem-100k")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return _child(a.child, a.workdir, a.workers, a.size, a.shard_size)
    sys.path.insert(0, str(REPO))
    from spectralgpt.data.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        cases = a.cases.split(",")
        if any(c.startswith("tif") for c in cases):
            t = time.perf_counter()
            generate("pretrain", Path(tmp) / "tif", n=10_000, size=a.size, workers=a.workers)
            print(f"generated 10,000 synthetic GeoTIFFs ({a.size} px) in {time.perf_counter() - t:.1f} s", flush=True)
        for case in cases:
            out = subprocess.run([sys.executable, __file__, "--child", case, "--workdir", tmp, "--workers",
                                  str(a.workers), "--size", str(a.size), "--shard-size", str(a.shard_size)],
                                 capture_output=True, text=True, check=True)
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
