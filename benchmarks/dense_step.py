"""Images/second of the demo's segmentation fine-tuning step (seg_vit_tiny_patch8_64: forward, per-pixel
cross-entropy through the task's own step function, backward, the engine's fused AdamW), side by side in one run:
the demo's settings (batch 8, ``dense_dropout: 0.1`` with the heads' own element-wise dropout,
`spectralgpt.models.layers.Dropout`) against torch's ``nn.Dropout`` in its place, against the levels' fusion as
published (each level resized to the finest, all concatenated, then the 1x1 conv; ours projects each level first
and resizes after, `UPerHead.fused`: the same map), against no dense-head dropout, and against larger batches.

    python benchmarks/dense_step.py [--steps 40] [--batches 8 16 32] [--model seg_vit_tiny_patch8_64]

The rows take turns one step at a time (in alternating order), so slow phases of a shared machine hit all rows
alike; a row's figure is its median step. Element-wise dropout on the head's full-resolution maps needs a random
draw per activation: the last lines give the share of one step's operator time (torch.profiler) spent drawing the masks, with torch's
``nn.Dropout`` (``aten::bernoulli_``, one draw per element) and with ours (``aten::random_``, one 64-bit draw per
four elements).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch import nn  # noqa: E402

from spectralgpt.models import create_model  # noqa: E402
from spectralgpt.models.layers import Dropout  # noqa: E402
from spectralgpt.models.reference import stacked_fusion  # noqa: E402
from spectralgpt.tasks.segmentation import segmentation_step  # noqa: E402
from spectralgpt.training.engine import adamw  # noqa: E402
from train_step import cpu_name, load_average, take_turns  # noqa: E402


def with_torch_dropout(model: nn.Module) -> nn.Module:
    """The same model with torch's nn.Dropout wherever the heads use ours (neither holds state)."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Dropout):
                setattr(parent, name, nn.Dropout(child.p))
    return model


class Row:
    def __init__(self, model_name: str, batch: int, dropout: float, torch_dropout: bool = False,
                 stacked: bool = False):
        torch.manual_seed(0)
        kind = " (torch's nn.Dropout)" if torch_dropout else " (ours)" if dropout else ""
        self.label = f"batch {batch:>2}, dense_dropout {dropout}{kind}" + (", fusion as published" if stacked else "")
        self.batch = batch
        self.model = create_model(model_name, drop_path_rate=0.1, dense_dropout=dropout).train()
        if torch_dropout:
            with_torch_dropout(self.model)
        if stacked:
            head = self.model.decode_head
            head.fused = lambda outs: stacked_fusion(head, outs)
        self.opt = adamw(self.model.parameters(), 1e-3, (0.9, 0.999), torch.device("cpu"))
        size, classes = self.model.cfg.img_size, self.model.cfg.num_classes
        self.data = {"image": torch.randn(batch, self.model.cfg.num_bands, size, size),
                     "mask": torch.randint(0, classes, (batch, size, size))}
        self.step_fn = segmentation_step()
        self.seconds: list[float] = []

    def step(self) -> None:
        loss, _ = self.step_fn(self.model, self.data)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    @property
    def images_per_second(self) -> float:
        return self.batch / statistics.median(self.seconds)


def op_share(row: Row, op: str) -> float:
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(3):
            row.step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if e.key == op) / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="seg_vit_tiny_patch8_64")
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--steps", type=int, default=40, help="timed steps per row")
    a = ap.parse_args()
    print(f"{datetime.date.today()}  {cpu_name()}, {torch.get_num_threads()} threads  torch {torch.__version__}  "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}  load average {load_average()}")
    rows = [Row(a.model, a.batches[0], 0.1), Row(a.model, a.batches[0], 0.1, torch_dropout=True),
            Row(a.model, a.batches[0], 0.1, stacked=True)]
    rows += [Row(a.model, b, 0.0) for b in a.batches[:1]] + [Row(a.model, b, 0.1) for b in a.batches[1:]]
    for row in rows:  # warm-up: allocations, kernel selection
        row.step()
    take_turns(rows, a.steps, torch.device("cpu"))
    demo = rows[0]
    for row in rows:
        rate = row.images_per_second
        print(f"  {row.label:<58} {rate:6.1f} img/s   x{rate / demo.images_per_second:.2f} vs {demo.label}")
    for row, op in ((rows[1], "aten::bernoulli_"), (demo, "aten::random_")):
        print(f"{row.label}: {100 * op_share(row, op):.0f} % of a step's operator time in {op} (dropout masks)")
    print(f"(load average now {load_average()})")


if __name__ == "__main__":
    main()
