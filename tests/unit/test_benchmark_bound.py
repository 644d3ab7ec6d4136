"""benchmarks/train_step.py's kernel bound: how a profiled step's operator time is split (GEMMs, attention kernels,
optimizer step, the rest) and the utilisation it would reach if the rest took no time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from torch.autograd import DeviceType


@pytest.fixture
def train_step(benchmark_script):
    return benchmark_script("train_step")


def event(key: str, self_us: float, total_us: float | None = None, device=DeviceType.CPU, cuda: bool = False):
    total = self_us if total_us is None else total_us
    times = dict(self_device_time_total=self_us, device_time_total=total) if cuda else \
        dict(self_cpu_time_total=self_us, cpu_time_total=total)
    return SimpleNamespace(key=key, device_type=device, **times)


def step_events(cuda: bool = False) -> list:
    """600 ms of GEMMs, 200 ms of flash attention, a 100 ms optimizer step (its fused kernel 90 ms inside the
    range), 100 ms of everything else."""
    return [event("aten::mm", 400e3, cuda=cuda), event("aten::addmm", 200e3, cuda=cuda),
            event("aten::_scaled_dot_product_flash_attention_for_cpu", 50e3, cuda=cuda),
            event("aten::_scaled_dot_product_flash_attention_for_cpu_backward", 150e3, cuda=cuda),
            event("Optimizer.step#AdamW.step", 10e3, 100e3, cuda=cuda), event("aten::_fused_adamw_", 90e3, cuda=cuda),
            event("aten::gelu", 60e3, cuda=cuda), event("aten::copy_", 40e3, cuda=cuda)]


def test_the_step_splits_into_gemms_attention_optimizer_and_the_rest(train_step):
    # 1 TFLOP/s peak; 900 GFLOP in the step, 200 of them the attention's two products
    out = train_step.kernel_bound(step_events(), 900e9, 200e9, 1e12, cuda=False)
    assert "where its 1000 ms of operator time go: GEMMs 600 ms (117 % of the peak), attention 200 ms (100 % of the " \
           "peak), optimizer 100 ms, everything else 100 ms" in out
    assert "would reach 100 % of the peak" in out  # 900 GFLOP over the 900 ms of GEMMs, attention and optimizer


def test_an_explicit_softmax_attention_counts_its_products_as_gemms(train_step):
    events = [e for e in step_events() if "attention" not in e.key]
    out = train_step.kernel_bound(events, 900e9, 200e9, 1e12, cuda=False)
    assert "GEMMs 600 ms (150 % of the peak), attention 0 ms, optimizer" in out
    assert "would reach 129 % of the peak" in out  # 900 GFLOP over 700 ms


def test_on_cuda_the_kernels_rows_do_not_count_twice(train_step):
    kernels = [event("sm90_xmma_gemm_bf16bf16_bf16f32", 600e3, device=DeviceType.CUDA, cuda=True),
               event("Optimizer.step#AdamW.step", 100e3, device=DeviceType.CUDA, cuda=True)]
    out = train_step.kernel_bound(step_events(cuda=True) + kernels, 900e9, 200e9, 1e12, cuda=True)
    assert "where its 1000 ms of operator time go: GEMMs 600 ms" in out and "everything else 100 ms" in out
