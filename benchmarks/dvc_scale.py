"""DVC at corpus scale: loose GeoTIFFs vs tar shards of them (`spectralgpt data pack`, with an index beside each).

For N small GeoTIFFs (default 10k and 100k) it times, per layout, side by side in one run: `dvc add`, `dvc status`
with nothing changed, `dvc push` to a local remote folder, and ingest's listing (`load_dataset("folder", ...)`,
in a fresh process: wall and CPU seconds and peak memory) -- for the tars both from their indexes and by a header
walk of the same tars without indexes (as tars packed by other tools are listed). From the two sizes it fits
t = a + b * N per step (a: the fixed start-up, b: the cost per image) and extrapolates to 1M images. With
``--million`` it also packs and measures a real 1M-image tar-sharded corpus (1,000 tars; the loose layout is not
run at 1M: a million files would take DVC about an hour here). It checks that DVC tracks every tar and index and
that every layout lists all N images. Run:

    python benchmarks/dvc_scale.py [--n 10000 100000] [--members 1000] [--million]

The images are 4-band 8 x 8 uint16 GeoTIFFs (~1.2 KB): one written by rasterio, the others the same file with
other pixel bytes (checked by reading some back), so writing a million takes a minute, not an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import yaml

from spectralgpt.data.pack import INDEX_SUFFIX, pack

BANDS = ("B2", "B3", "B4", "B8")
SHAPE = (4, 8, 8)
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}
STEPS = ("add", "status", "push", "listing")


def template(tmp: Path) -> tuple[bytes, int]:
    """A GeoTIFF written by rasterio and the offset of its pixel bytes (uncompressed, pixel-interleaved)."""
    a = (np.arange(np.prod(SHAPE), dtype=np.uint16) * 7 + 11).reshape(SHAPE)
    p = tmp / "template.tif"
    with rasterio.open(p, "w", driver="GTiff", height=SHAPE[1], width=SHAPE[2], count=SHAPE[0], dtype="uint16",
                       interleave="pixel") as dst:
        dst.write(a)
        dst.descriptions = BANDS
    raw = p.read_bytes()
    at = raw.find(a.transpose(1, 2, 0).tobytes())
    assert at > 0 and raw.count(a.transpose(1, 2, 0).tobytes()) == 1
    return raw, at


def write_corpus(root: Path, n: int, tmp: Path) -> None:
    """n distinct GeoTIFFs in 100 folders (random pixels), a few read back with rasterio as a check."""
    raw, at = template(tmp)
    npx = int(np.prod(SHAPE))
    rng = np.random.default_rng(0)
    for d in range(100):
        (root / f"d{d:02d}").mkdir(parents=True, exist_ok=True)
    for start in range(0, n, 10_000):
        block = rng.integers(1, 4000, (min(10_000, n - start), npx), dtype=np.uint16)
        for j, px in enumerate(block):
            k = start + j
            (root / f"d{k % 100:02d}" / f"img-{k:07d}.tif").write_bytes(raw[:at] + px.tobytes() + raw[at + 2 * npx:])
    for k in (0, n // 2, n - 1):
        with rasterio.open(root / f"d{k % 100:02d}" / f"img-{k:07d}.tif") as src:
            assert src.descriptions == BANDS and src.read().shape == SHAPE


def timed(cmd, cwd) -> tuple[float, float]:
    """(wall, CPU) seconds of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=ENV)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


LISTING = """
import json, resource, sys, time
t = time.perf_counter()
from spectralgpt.data import load_dataset
from spectralgpt.data.sources import folder
imports = time.perf_counter() - t
t, c = time.perf_counter(), time.process_time()
n = len(load_dataset("folder", sys.argv[1], bands=None))
print(json.dumps({"n": n, "wall": time.perf_counter() - t, "cpu": time.process_time() - c, "imports": imports,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def listing(root: Path) -> dict:
    """Ingest's listing of `root` in a fresh process (cold for Python; the imports, ~1 s, timed apart)."""
    out = subprocess.run([sys.executable, "-c", LISTING, str(root)], check=True, capture_output=True, text=True,
                         env=ENV)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tracked_files(repo: Path, data: str) -> set[str]:
    """The relative paths DVC recorded for the folder `data` (its .dir object in the cache)."""
    md5 = yaml.safe_load((repo / f"{data}.dvc").read_text())["outs"][0]["md5"]
    obj = repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return {e["relpath"] for e in json.loads(obj.read_text())}


def measure_dvc(repo: Path, data: str = "data") -> dict:
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*dvc, "init", "-q"], cwd=repo, check=True, env=ENV)
    subprocess.run([*dvc, "remote", "add", "-d", "local", str(repo.parent / f"{repo.name}-remote")], cwd=repo,
                   check=True, env=ENV)
    out = {"add": timed([*dvc, "add", "-q", data], repo), "status": timed([*dvc, "status", "-q"], repo),
           "push": timed([*dvc, "push", "-q"], repo)}
    files = {p.relative_to(repo / data).as_posix() for p in (repo / data).rglob("*") if p.is_file()}
    assert tracked_files(repo, data) == files, "DVC does not track every file of the folder"
    return out


def without_indexes(tars: Path, dst: Path) -> Path:
    """The same tars (hard links) without their indexes: listed by a header walk, like tars packed elsewhere."""
    dst.mkdir(parents=True)
    for p in sorted(tars.iterdir()):
        if not p.name.endswith(INDEX_SUFFIX):
            os.link(p, dst / p.name)
    return dst


def run(n: int, members: int, tmp: Path, loose_too: bool = True) -> dict:
    loose = tmp / f"loose-{n}"
    t = time.perf_counter()
    write_corpus(loose / "data", n, tmp)
    print(f"[{n}] wrote {n} GeoTIFFs in {time.perf_counter() - t:.0f} s", flush=True)
    packed = tmp / f"tars-{n}"
    t, c = time.perf_counter(), time.process_time()
    r = pack(loose / "data", packed / "data", members=members)
    t_pack, c_pack = time.perf_counter() - t, time.process_time() - c
    t_repack = float("nan")
    if loose_too:  # a rerun: every tar checked byte for byte against its sources, none rewritten
        t = time.perf_counter()
        again = pack(loose / "data", packed / "data", members=members)
        t_repack = time.perf_counter() - t
        assert (again.written, again.skipped, again.indexed) == (0, len(r.tars), 0)
    print(f"[{n}] packed into {len(r.tars)} tars of {members} in {t_pack:.0f} s ({c_pack:.0f} s CPU); "
          f"rerun {t_repack:.0f} s", flush=True)
    if not loose_too:
        shutil.rmtree(loose)
    res = {"n": n, "ntars": len(r.tars), "pack": t_pack, "repack": t_repack}
    walk = without_indexes(packed / "data", tmp / f"walk-{n}")
    res["tars"] = {**measure_dvc(packed), "listing": listing(packed / "data")}
    res["walk"] = {"listing": listing(walk)}
    print(f"[{n}] tars: {fmt(res['tars'])}", flush=True)
    if loose_too:
        res["loose"] = {**measure_dvc(loose), "listing": listing(loose / "data")}
        print(f"[{n}] loose: {fmt(res['loose'])}", flush=True)
        assert res["loose"]["listing"]["n"] == n
    assert res["tars"]["listing"]["n"] == res["walk"]["listing"]["n"] == n
    shutil.rmtree(loose, ignore_errors=True)
    shutil.rmtree(walk)
    shutil.rmtree(packed)
    shutil.rmtree(tmp / f"tars-{n}-remote", ignore_errors=True)
    shutil.rmtree(tmp / f"loose-{n}-remote", ignore_errors=True)
    return res


def wall(x) -> float:
    return x["wall"] if isinstance(x, dict) else x[0]


def cpu(x) -> float:
    return x["cpu"] if isinstance(x, dict) else x[1]


def fmt(d: dict) -> str:
    return ", ".join(f"{k} {wall(d[k]):.2f} s ({cpu(d[k]):.2f} s CPU)" for k in STEPS if k in d)


def fit(small: dict, large: dict, k: str, layout: str, at: int = 1_000_000, of=None) -> float:
    """t(at) from the line through the two measured sizes (wall seconds, or `of`); never below the larger's."""
    of = of or wall
    (n1, t1), (n2, t2) = (small["n"], of(small[layout][k])), (large["n"], of(large[layout][k]))
    b = max(0.0, (t2 - t1) / (n2 - n1))
    return max(t2, t2 + b * (at - n2))


def report(results: list[dict], million: dict | None) -> None:
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; python "
          f"{platform.python_version()}; {time.strftime('%Y-%m-%d')}")
    for r in results:
        print(f"\n{r['n']:,} images, {r['ntars']} tars (pack {r['pack']:.0f} s, rerun {r['repack']:.0f} s); "
              "wall s (CPU s)")
        print("| step | loose files | tar shards | loose / tars |")
        print("| --- | --- | --- | --- |")
        for k in STEPS:
            a, b = r["loose"][k], r["tars"][k]
            print(f"| {k} | {wall(a):.2f} ({cpu(a):.2f}) | {wall(b):.2f} ({cpu(b):.2f}) | x{wall(a) / wall(b):.1f} |")
        w = r["walk"]["listing"]
        print(f"| listing, tars without index (header walk) | | {w['wall']:.2f} ({w['cpu']:.2f}) | |")
        print(f"listing peak memory: loose {r['loose']['listing']['rss_mb']:.0f} MB, tars "
              f"{r['tars']['listing']['rss_mb']:.0f} MB")
    if len(results) >= 2:
        s, g = results[0], results[-1]
        print(f"\nat 1,000,000 images (line through {s['n']:,} and {g['n']:,}; wall s (CPU s))"
              + ("; the last column measured" if million else ""))
        print("| step | loose files | tar shards | loose / tars |" + (" tar shards, measured |" if million else ""))
        print("| --- | --- | --- | --- |" + (" --- |" if million else ""))
        for k in STEPS:
            a, b = fit(s, g, k, "loose"), fit(s, g, k, "tars")
            ac, bc = fit(s, g, k, "loose", of=cpu), fit(s, g, k, "tars", of=cpu)
            extra = f" {wall(million['tars'][k]):.1f} ({cpu(million['tars'][k]):.1f}) |" if million else ""
            print(f"| {k} | {a:.0f} ({ac:.0f}) | {b:.1f} ({bc:.1f}) | x{a / b:.0f} |" + extra)
        w, wc = fit(s, g, "listing", "walk"), fit(s, g, "listing", "walk", of=cpu)
        extra = f" {wall(million['walk']['listing']):.1f} ({cpu(million['walk']['listing']):.1f}) |" if million else ""
        print(f"| listing, header walk | | {w:.1f} ({wc:.1f}) | |" + extra)
    if million:
        print(f"\n1M measured: pack {million['pack']:.0f} s, rerun (byte-for-byte check) {million['repack']:.0f} s; "
              f"listing peak memory {million['tars']['listing']['rss_mb']:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--million", action="store_true", help="also pack and measure 1M images as tars")
    ap.add_argument("--tmp", default=None, help="scratch folder (default: the system's temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        results = [run(n, args.members, Path(tmp)) for n in sorted(args.n)]
        million = run(1_000_000, args.members, Path(tmp), loose_too=False) if args.million else None
        report(results, million)


if __name__ == "__main__":
    main()
