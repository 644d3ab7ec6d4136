"""Forward + backward of the base MAE decoder's attention (batch 2, 16 heads of 32 dimensions over all 1024 tokens)
side by side in one run: torch's flash-attention kernel, its math kernel and an explicit softmax(q k^T) v, each in
fp32 and bf16, with the FLOP rate and its fraction of the same-dtype GEMM peak measured in the same run.

    python benchmarks/attention_step.py [--steps 5] [--batch 2] [--heads 16] [--tokens 1024] [--head-dim 32]

The rows take turns one step at a time (in alternating order), so slow phases of a shared machine hit all rows
alike; a row's figure is its median step. FLOPs count the two matrix products forward and backward (4 N^2 D per
head forward, twice that backward); the flash kernel's backward recomputes the scores, which is not counted. It
is where the base step's bf16 time goes on a CPU without AMX (README, "One MAE training step").
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import Peak, cpu_name, load_average, native_bf16, take_turns  # noqa: E402


def explicit(q, k, v):
    return ((q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)).softmax(-1) @ v


def kernel(backend: SDPBackend):
    def run(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v)
    return run


class Row:
    def __init__(self, label: str, fn, dtype: torch.dtype, shape: tuple[int, ...], device: torch.device):
        torch.manual_seed(0)
        self.label, self.fn, self.dtype = label, fn, dtype
        self.qkv = [torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3)]
        self.grad = torch.randn(shape, device=device, dtype=dtype)
        self.seconds: list[float] = []

    def step(self) -> None:
        self.fn(*self.qkv).backward(self.grad)
        for t in self.qkv:
            t.grad = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per row")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    device = torch.device(a.device)
    shape = (a.batch, a.heads, a.tokens, a.head_dim)
    flops = 3 * 4 * a.tokens**2 * a.head_dim * a.heads * a.batch
    dtypes = [torch.float32] + ([torch.bfloat16] if native_bf16(device) else [])
    print(f"{datetime.date.today()}  {cpu_name() if device.type == 'cpu' else torch.cuda.get_device_name(device)}, "
          f"{torch.get_num_threads()} threads  torch {torch.__version__}  load average {load_average()}")
    print(f"q, k, v {tuple(shape)}: {flops / 1e9:.1f} GFLOP per forward + backward")
    rows = [Row(f"{name} {str(dt).removeprefix('torch.')}", fn, dt, shape, device) for dt in dtypes
            for name, fn in (("flash kernel", kernel(SDPBackend.FLASH_ATTENTION)),
                             ("math kernel", kernel(SDPBackend.MATH)), ("explicit softmax", explicit))]
    for row in rows:  # warm-up
        row.step()
    take_turns(rows, a.steps, device)
    peaks = {dt: Peak() for dt in dtypes}
    for dt, peak in peaks.items():
        peak.measure(dt, device, budget_s=1.0)
    print("measured GEMM peak: " + ", ".join(f"{str(dt).removeprefix('torch.')} {p.wall / 1e9:.1f} GFLOP/s"
                                             for dt, p in peaks.items()))
    base = rows[0]
    for row in rows:
        s = statistics.median(row.seconds)
        rate = flops / s
        print(f"  {row.label:<26} {s * 1e3:8.1f} ms  {rate / 1e9:7.1f} GFLOP/s  "
              f"{100 * rate / peaks[row.dtype].wall:5.1f}% of the {str(row.dtype).removeprefix('torch.')} peak  "
              f"x{statistics.median(base.seconds) / s:.2f} vs {base.label}")
    print(f"(load average now {load_average()})")


if __name__ == "__main__":
    main()
