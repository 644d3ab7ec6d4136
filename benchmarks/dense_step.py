"""Images/second of the demo's segmentation fine-tuning step (seg_vit_tiny_patch8_64: forward, per-pixel
cross-entropy through the task's own step function, backward, the engine's fused AdamW), side by side in one run:
the demo's settings (batch 8, ``dense_dropout: 0.1``) against larger batches and against no dense-head dropout.

    python benchmarks/dense_step.py [--steps 10] [--rounds 3] [--batches 8 16 32] [--model seg_vit_tiny_patch8_64]

Each round times every row once, in turn, so slow phases of a shared machine hit all rows alike; a row's figure is
its best round. The last line gives the share of one demo step spent drawing dropout masks (``aten::bernoulli_``,
torch.profiler): element-wise dropout on the head's full-resolution maps needs one random number per activation.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spectralgpt.models import create_model  # noqa: E402
from spectralgpt.tasks.segmentation import segmentation_step  # noqa: E402
from spectralgpt.training.engine import adamw  # noqa: E402
from train_step import cpu_name, load_average  # noqa: E402


class Row:
    def __init__(self, model_name: str, batch: int, dropout: float):
        torch.manual_seed(0)
        self.label = f"batch {batch:>2}, dense_dropout {dropout}"
        self.batch = batch
        self.model = create_model(model_name, drop_path_rate=0.1, dense_dropout=dropout).train()
        self.opt = adamw(self.model.parameters(), 1e-3, (0.9, 0.999), torch.device("cpu"))
        size, classes = self.model.cfg.img_size, self.model.cfg.num_classes
        self.data = {"image": torch.randn(batch, self.model.cfg.num_bands, size, size),
                     "mask": torch.randint(0, classes, (batch, size, size))}
        self.step_fn = segmentation_step()
        self.best = 0.0

    def step(self) -> None:
        loss, _ = self.step_fn(self.model, self.data)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def time(self, steps: int) -> None:
        t = time.perf_counter()
        for _ in range(steps):
            self.step()
        self.best = max(self.best, steps * self.batch / (time.perf_counter() - t))


def bernoulli_share(row: Row) -> float:
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(3):
            row.step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if e.key == "aten::bernoulli_") / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="seg_vit_tiny_patch8_64")
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print(f"{datetime.date.today()}  {cpu_name()}, {torch.get_num_threads()} threads  torch {torch.__version__}  "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}  load average {load_average()}")
    rows = [Row(a.model, b, d) for b in a.batches for d in (0.1, 0.0)]
    for row in rows:  # warm-up: allocations, kernel selection
        row.step()
    for _ in range(a.rounds):
        for row in rows:
            row.time(a.steps)
    demo = rows[0]
    for row in rows:
        print(f"  {row.label}   {row.best:6.1f} img/s   x{row.best / demo.best:.2f} vs {demo.label}")
    print(f"{demo.label}: {100 * bernoulli_share(demo):.0f} % of a step's operator time in aten::bernoulli_ "
          f"(dropout masks)  (load average now {load_average()})")


if __name__ == "__main__":
    main()
