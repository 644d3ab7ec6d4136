"""Images/second of the demo's fine-tuning steps when stages share the cores as `flows/lanes.py` runs them, side by
side in one run: one process with every core (one stage after another, plain `dvc repro`), against two processes at
once with an equal share each (`--jobs 2`), against two processes at once with every core each (oversubscribed).

    python benchmarks/lanes.py [--model vit_tiny_patch8_64] [--batch 16] [--steps 30] [--cpus N]

Each layout runs the same training step (forward, cross-entropy, backward, the engine's fused AdamW) for `--steps`
timed steps in every process, all processes starting their timed steps together once each is warm; a layout's figure is the images per second of all its processes together (each
process' median step), the ratio is against one process with every core. Tiny models spend much of a step in
small kernels that two threads barely share; two processes keep both cores busy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_step import cpu_name, load_average  # noqa: E402


def worker(model_name: str, batch: int, steps: int) -> dict:
    import torch
    import torch.nn.functional as F

    from spectralgpt.models import create_model
    from spectralgpt.training.engine import adamw

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, drop_path_rate=0.1).train()
    opt = adamw(model.parameters(), 1e-3, (0.9, 0.999), torch.device("cpu"))
    size = model.cfg.img_size
    x, y = torch.randn(batch, model.cfg.num_bands, size, size), torch.randint(0, 10, (batch,))

    def step():
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    print("ready", flush=True)  # every worker is warm: the parent starts the timed steps of all at once
    sys.stdin.readline()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {"threads": torch.get_num_threads(), "images_per_second": batch / statistics.median(times)}


def layout(processes: int, threads: int, args) -> float:
    """Images/second of `processes` concurrent workers with `threads` threads each, all together."""
    cmd = [sys.executable, __file__, "--worker", "--model", args.model, "--batch", str(args.batch),
           "--steps", str(args.steps)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(processes)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a worker failed before its timed steps")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    rows = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a worker failed")
    return sum(r["images_per_second"] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit_tiny_patch8_64")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)), help="cores to share (default: all)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.model, args.batch, args.steps)))
        return
    n = args.cpus
    print(f"{cpu_name()}, {n} cores, torch threads per process as given; {datetime.date.today()}, "
          f"load {load_average()}")
    print(f"{args.model}, batch {args.batch}, {args.steps} timed steps per process")
    rows = [(f"1 process x {n} threads (one stage at a time)", 1, n),
            (f"2 processes x {max(1, n // 2)} thread(s) (two lanes, cores shared)", 2, max(1, n // 2)),
            (f"2 processes x {n} threads (oversubscribed)", 2, n)]
    base = None
    for label, procs, threads in rows:
        ips = layout(procs, threads, args)
        base = base or ips
        print(f"{label:<58} {ips:7.1f} img/s   x{ips / base:.2f}")


if __name__ == "__main__":
    main()
