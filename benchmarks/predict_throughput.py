"""Whole-scene prediction throughput on this machine: the batched, tiled `predict_scene` path against a naive
one-tile-at-a-time loop (open + read one window, normalise, run the model with batch 1, write that window).

    python benchmarks/predict_throughput.py                    # 4096 x 4096, seg_vit_tiny_patch8_64 + seg_vit_small_patch8_128
    python benchmarks/predict_throughput.py --size 10980       # a full Sentinel-2 tile
    python benchmarks/predict_throughput.py --size 1024 --naive-tiles 64

The naive loop runs over the first `--naive-tiles` tiles (all of them with 0) and its rate is per tile, so it is
comparable with the batched run over the whole scene. Peak memory: Python/numpy allocations (tracemalloc) per path
and the process's maximum resident set size (getrusage) after each path.
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import Affine
from rasterio.windows import Window

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.inference import Predictor, predict_scene
from spectralgpt.models import create_model, save_model


def write_scene(path: Path, size: int) -> None:
    """A 12-band uint16 scene written strip by strip (bounded memory even at 10980 x 10980)."""
    profile = dict(driver="GTiff", count=12, height=size, width=size, dtype="uint16", crs="EPSG:32631",
                   transform=Affine(10, 0, 500000, 0, -10, 5000000), tiled=True, blockxsize=256, blockysize=256,
                   nodata=0, BIGTIFF="IF_SAFER")
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, size, 512):
            h = min(512, size - r)
            yy, xx = np.mgrid[r:r + h, 0:size]
            base = 1500 + 700 * np.sin(xx / 37.0 + yy / 53.0)
            block = (base[None] + rng.integers(1, 600, (12, h, size))).astype(np.uint16)
            dst.write(block, window=Window(0, r, size, h))
        for i, b in enumerate(PRETRAIN_BANDS, start=1):
            dst.set_band_description(i, b)


def naive(predictor: Predictor, src_path: Path, out_path: Path, max_tiles: int) -> int:
    t = predictor.size
    with rasterio.open(src_path) as s:
        h, w, crs, transform = s.height, s.width, s.crs, s.transform
    n = 0
    with rasterio.open(out_path, "w", driver="GTiff", count=1, height=h, width=w, dtype="uint8", crs=crs,
                       transform=transform, tiled=True, blockxsize=256, blockysize=256, compress="deflate") as dst:
        for r in range(0, h - t + 1, t):
            for c in range(0, w - t + 1, t):
                if max_tiles and n >= max_tiles:
                    return n
                with rasterio.open(src_path) as s:
                    tile = s.read(window=Window(c, r, t, t))
                with torch.no_grad():
                    p = predictor.forward(predictor.prepare(tile))
                dst.write(p[0].argmax(0).cpu().numpy().astype(np.uint8), 1, window=Window(c, r, t, t))
                n += 1
    return n


def measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    n = fn()
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return n, dt, peak / 2**20, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--models", nargs="+", default=["seg_vit_tiny_patch8_64", "seg_vit_small_patch8_128"])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--overlap", type=float, default=0.0, help="batched path overlap (0: same tiles as naive)")
    ap.add_argument("--naive-tiles", type=int, default=256, help="tiles timed in the naive loop (0: all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scene = tmp / "scene.tif"
        t0 = time.perf_counter()
        write_scene(scene, args.size)
        print(f"scene {args.size} x {args.size} x 12 uint16 written in {time.perf_counter() - t0:.1f} s; "
              f"torch threads {torch.get_num_threads()}, device {args.device}")
        for name in args.models:
            torch.manual_seed(0)
            mdir = save_model(create_model(name, num_classes=13), tmp / name, normalization={"name": "minmax"},
                              extra={"task": "segmentation"})
            p = Predictor.load(mdir, args.device)  # fp32: the naive loop and the exact batched path
            fast = Predictor.load(mdir, args.device, precision="auto")  # bf16 autocast where the hardware has it
            t = p.size
            out = {kind: tmp / f"{name}-{kind}.tif" for kind in ("batched", "fast", "naive")}  # predict never overwrites
            for q in (p, fast):
                q.forward(q.prepare(np.ones((1, 12, t, t), np.uint16)))  # warm-up
            n_b, dt_b, mem_b, rss_b = measure(lambda p=p, o=out["batched"]: predict_scene(
                p, scene, o, overlap=args.overlap, batch_size=args.batch_size, resume=False,
                progress=False).tiles_computed)
            n_f, dt_f, _, _ = measure(lambda q=fast, o=out["fast"]: predict_scene(
                q, scene, o, overlap=args.overlap, batch_size=args.batch_size, resume=False,
                progress=False).tiles_computed)
            n_n, dt_n, mem_n, rss_n = measure(lambda p=p, o=out["naive"]: naive(p, scene, o, args.naive_tiles))
            with rasterio.open(out["batched"]) as a, rasterio.open(out["fast"]) as b:
                agree = float((a.read(1) == b.read(1)).mean())
            mpx = t * t / 1e6
            rb, rf, rn = n_b / dt_b, n_f / dt_f, n_n / dt_n
            print(f"{name} (tile {t}):")
            print(f"  batched tiled fp32 : {n_b:6d} tiles in {dt_b:7.1f} s = {rb:7.2f} tiles/s, {rb * mpx:6.3f} MP/s "
                  f"(scene incl. blending/write: {args.size ** 2 / 1e6 / dt_b:6.3f} MP/s); "
                  f"peak numpy/python {mem_b:7.1f} MiB, max RSS {rss_b:7.0f} MiB")
            label = "bf16" if fast.autocast_dtype is not None else "fp32"
            print(f"  batched tiled {label}  : {n_f:6d} tiles in "
                  f"{dt_f:7.1f} s = {rf:7.2f} tiles/s, {rf * mpx:6.3f} MP/s; class map agrees with fp32 on "
                  f"{100 * agree:.2f} % of pixels")
            print(f"  naive 1-by-1 fp32  : {n_n:6d} tiles in {dt_n:7.1f} s = {rn:7.2f} tiles/s, {rn * mpx:6.3f} MP/s; "
                  f"peak numpy/python {mem_n:7.1f} MiB, max RSS {rss_n:7.0f} MiB")
            print(f"  speed-up vs naive: batched fp32 {rb / rn:.2f}x, batched {label} {rf / rn:.2f}x")


if __name__ == "__main__":
    main()
