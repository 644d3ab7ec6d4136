"""Images/second of one full MAE training step (forward, backward, AdamW step), side by side in one run:

  official   the published step restated plainly (spectralgpt.models.reference: Conv3d over all tokens, separate
             q/k/v matmuls, explicit softmax attention, fp32) with torch's default AdamW, as the published
             training script builds it
  ours       spectralgpt.models.SpectralMAE (fused q/k/v, scaled_dot_product_attention = flash attention,
             kept-token embedding) with the training engine's optimizer (fused AdamW on CPUs and CUDA GPUs)
  ours bf16  the same under bf16 autocast: on CUDA, and on CPUs with native bf16 (AVX-512 BF16 / AMX); a CPU
             without it runs bf16 matmuls emulated, ~100x slower than fp32, so the row is skipped there unless
             --bf16 on (the training engine never picks bf16 on a CPU by itself either)
  compiled   with --compile: the same under torch.compile (a failure is reported and the row skipped)

    python benchmarks/train_step.py [--steps 3] [--rounds 3] [--configs mae_vit_base_patch8_128:2 ...]

Each round times every row once, in turn, and measures the GEMM peak again, so slow phases of a shared machine
hit all rows alike; a row's figure is its best round, and `range` gives its slowest and fastest round. Every row
reports its model FLOP rate and its utilisation of the hardware's limit: the best square-matmul FLOP rate
measured in the same run, same dtype, same thread count (fp32 rows against fp32, bf16 against bf16, fp16
against fp16). On a CPU, `cpu-time` repeats the utilisation with both sides counted in FLOP per process CPU
second (all threads' CPU time added) instead of per wall second: time lost to other programs on a loaded machine
then counts on neither side, while threads spinning idle at the step's synchronisation points still count.

With --profile each row's step is then profiled by operator, and its operator time split into the GEMMs, the
attention kernels, the optimizer step and everything else; the line after the table gives the utilisation the
step would reach if everything else took no time. That is the bound the GEMM, attention and optimizer kernels
alone put on a row: a target above it cannot be met by fusing or removing the other operators.

On a CPU shared with other busy programs, compare runs with OMP_WAIT_POLICY unset and =PASSIVE: under libgomp's
default policy the worker threads of every small parallel operator can be woken late (README, "One MAE training
step": on a busy 2-core AMD EPYC the base step reached 34-43 % of the peak per CPU second unset, 56-66 % with
PASSIVE). The header line prints the policy and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.autograd import DeviceType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spectralgpt.models import create_model  # noqa: E402
from spectralgpt.models.reference import ReferenceMAE  # noqa: E402
from spectralgpt.training.engine import adamw  # noqa: E402


def mae_step_flops(cfg, batch: int, mask_ratio: float, attention_only: bool = False) -> float:
    """Matmul FLOPs of forward + backward (3x forward) of one MAE step; with `attention_only` those of the
    attention's two products (QK^T and AV) alone."""
    n, keep = cfg.num_tokens, int(cfg.num_tokens * (1 - mask_ratio))

    def blocks(tokens, dim, depth):  # q/k/v/proj + MLP matmuls, then QK^T and AV
        attention = 4 * tokens**2 * dim
        return depth * (attention if attention_only else
                        8 * tokens * dim**2 + 4 * cfg.mlp_ratio * tokens * dim**2 + attention)

    fwd = blocks(keep, cfg.embed_dim, cfg.depth) + blocks(n, cfg.decoder_embed_dim, cfg.decoder_depth)
    if not attention_only:
        fwd += 2 * keep * cfg.patch_dim * cfg.embed_dim
        fwd += 2 * keep * cfg.embed_dim * cfg.decoder_embed_dim
        fwd += 2 * n * cfg.decoder_embed_dim * cfg.patch_dim
    return 3 * fwd * batch


def cpu_name() -> str:
    """The CPU's model name with its family and model numbers (a cloud VM's name is often just "AMD EPYC", and
    figures differ between its generations)."""
    with contextlib.suppress(OSError):
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]  # the first logical CPU's block
        info = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
        if "model name" in info:
            return f"{info['model name']} (family {info.get('cpu family', '?')} model {info.get('model', '?')})"
    return platform.processor() or platform.machine()


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def load_average() -> str:
    """1, 5 and 15 minute load averages: how busy the machine was (other programs' runnable threads count too)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def take_turns(rows, steps: int, device: torch.device) -> None:
    """Time `steps` single steps of every row (each has `step()` and a `seconds` list), the rows taking turns one
    step at a time in alternating order, so slow phases of a shared machine hit all rows alike; report medians."""
    for i in range(steps):
        for row in rows if i % 2 else rows[::-1]:
            t = time.perf_counter()
            row.step()
            sync(device)
            row.seconds.append(time.perf_counter() - t)


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


@dataclass
class Peak:
    """Best square-matmul rate seen so far: wall FLOP/s and, on a CPU, FLOP per process CPU second (all threads'
    CPU time added: the rate of one core kept busy)."""
    wall: float = 0.0
    cpu: float = 0.0

    def measure(self, dtype: torch.dtype, device: torch.device, budget_s: float) -> None:
        """Sizes grow (512, 1024, ... up to 2048 on a CPU, 8192 on a GPU) while one product takes under 0.2 s;
        each size is timed for at most `budget_s` (emulated bf16 on a CPU is hundreds of times slower), in bursts
        of products lasting >= 0.05 s each: process CPU time of the other threads is only brought up to date every
        scheduler tick, so a single short product can read as several times faster than the core allows."""
        for n in (512, 1024, 2048, 4096, 8192):
            if n > (8192 if device.type == "cuda" else 2048):
                break
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            out = a @ b  # warm-up
            sync(device)
            w0 = time.perf_counter()
            torch.matmul(a, b, out=out)
            sync(device)
            took = time.perf_counter() - w0
            burst = max(1, int(0.05 / max(took, 1e-6)))
            start = time.perf_counter()
            while time.perf_counter() - start < budget_s:
                w0, c0 = clocks()
                for _ in range(burst):
                    torch.matmul(a, b, out=out)
                sync(device)
                w1, c1 = clocks()
                took = (w1 - w0) / burst
                self.wall = max(self.wall, 2 * n**3 / took)
                if device.type == "cpu" and c1 > c0:
                    self.cpu = max(self.cpu, 2 * n**3 * burst / (c1 - c0))
            if took > 0.2:
                break


@dataclass
class Row:
    label: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    precision: str  # fp32 | bf16 | fp16
    autocast: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    runner: object = None
    rounds: list[tuple[float, float]] = field(default_factory=list)  # (wall s, process CPU s) per round
    failed: str = ""

    def step(self, x: torch.Tensor, mask_ratio: float) -> None:
        ctx = torch.autocast(x.device.type, dtype=self.autocast) if self.autocast else contextlib.nullcontext()
        with ctx:
            loss = (self.model if self.runner is None else self.runner)(x, mask_ratio)[0]
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()

    def time(self, x: torch.Tensor, steps: int, mask_ratio: float) -> None:
        if self.failed:
            return
        try:
            if not self.rounds:  # warm-up: allocations, kernel selection, compilation
                for _ in range(2):
                    self.step(x, mask_ratio)
            sync(x.device)
            w0, c0 = clocks()
            for _ in range(steps):
                self.step(x, mask_ratio)
            sync(x.device)
            w1, c1 = clocks()
        except Exception as e:  # noqa: BLE001 - out of memory, a compiler failure: report it, keep the others
            self.failed = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            self.model = self.runner = self.optimizer = None
            if x.device.type == "cuda":
                torch.cuda.empty_cache()
            return
        self.rounds.append((w1 - w0, c1 - c0))


def build_rows(name: str, device: torch.device, args, bf16_row: bool) -> list[Row]:
    torch.manual_seed(0)
    fast = create_model(name).to(device).train()
    ref = ReferenceMAE(fast.cfg).to(device).train()
    ref.load_state_dict(fast.state_dict())
    betas = (0.9, 0.95)
    rows = [Row("official fp32", ref, torch.optim.AdamW(ref.parameters(), lr=1e-4, betas=betas), "fp32"),
            Row("ours fp32", fast, adamw(fast.parameters(), 1e-4, betas, device), "fp32")]
    if bf16_row:
        rows.append(Row("ours bf16 autocast", fast, adamw(fast.parameters(), 1e-4, betas, device), "bf16",
                        torch.bfloat16))
    if device.type == "cuda":
        rows.append(Row("ours fp16 autocast + scaler", fast, adamw(fast.parameters(), 1e-4, betas, device), "fp16",
                        torch.float16, torch.amp.GradScaler("cuda")))
    if args.compile:
        compiled = torch.compile(fast, mode=args.compile_mode)
        precisions = ["bf16"] if device.type == "cuda" else ["fp32"] + (["bf16"] if bf16_row else [])
        for p in precisions:
            rows.append(Row(f"ours {p} compiled", fast, adamw(fast.parameters(), 1e-4, betas, device), p,
                            torch.bfloat16 if p == "bf16" else None, runner=compiled))
    return rows


GEMM_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::_addmm_activation"}


def kernel_bound(events, step_flops: float, attention_flops: float, peak: float, cuda: bool) -> str:
    """Where one profiled step's operator time goes, in the three parts no operator fusion removes (the GEMMs, the
    attention kernels, the optimizer step) and the rest; the GEMMs' and the attention's FLOP rates against the peak;
    and the utilisation the step would reach if the rest took no time: the bound these kernels put on the row's
    target. On CUDA an operator's time is that of the kernels it launched (the kernels' own rows are skipped, they
    would count twice)."""
    self_key, total_key = ("self_device_time_total", "device_time_total") if cuda else \
        ("self_cpu_time_total", "cpu_time_total")
    parts = {"GEMMs": 0.0, "attention": 0.0, "optimizer": 0.0, "everything else": 0.0}
    for e in events:
        if e.device_type != DeviceType.CPU:  # a CUDA kernel or a range's GPU-side copy
            continue
        if e.key.startswith("Optimizer.step#"):  # a range: its operators' time, all of it optimizer work
            parts["optimizer"] += getattr(e, total_key)
            parts["everything else"] -= getattr(e, total_key)
        part = "GEMMs" if e.key in GEMM_OPS else "attention" if e.key.startswith("aten::") and "attention" in e.key \
            else "everything else"
        parts[part] += getattr(e, self_key)
    s = {k: max(v, 0.0) / 1e6 for k, v in parts.items()}  # microseconds -> seconds
    # an explicit softmax attention (the official step) runs its two products as GEMMs: then they count there
    rates = {"GEMMs": step_flops - attention_flops, "attention": attention_flops} if s["attention"] else \
        {"GEMMs": step_flops}
    shown = ", ".join(f"{k} {v * 1e3:.0f} ms" + (f" ({100 * rates[k] / v / peak:.0f} % of the peak)"
                                                 if k in rates and v > 0 else "") for k, v in s.items())
    kernels = s["GEMMs"] + s["attention"] + s["optimizer"]
    bound = f"{100 * step_flops / kernels / peak:.0f} %" if kernels > 0 else "n/a"
    return (f"  where its {sum(s.values()) * 1e3:.0f} ms of operator time go: {shown}\n"
            f"  with everything else taking no time the step would reach {bound} of the peak: the bound these GEMM, "
            f"attention and optimizer kernels put on it")


def profile_table(row: Row, x: torch.Tensor, mask_ratio: float, peak: float, top: int = 15) -> str:
    from torch.profiler import ProfilerActivity, profile

    cuda = x.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        row.step(x, mask_ratio)
        sync(x.device)
    events = prof.key_averages()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    cfg, batch = row.model.cfg, x.shape[0]
    bound = kernel_bound(events, mae_step_flops(cfg, batch, mask_ratio),
                         mae_step_flops(cfg, batch, mask_ratio, attention_only=True), peak, cuda)
    return f"{events.table(sort_by=key, row_limit=top, max_name_column_width=60)}\n{bound}"


def check_flash(device: torch.device, cfg) -> str:
    """On CUDA: does scaled_dot_product_attention run the flash kernel at the model's head sizes in bf16?"""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if device.type != "cuda":
        return "flash attention (CPU kernel)"
    try:
        for dim, heads, n in ((cfg.embed_dim, cfg.num_heads, 128), (cfg.decoder_embed_dim, cfg.decoder_num_heads, 128)):
            q = torch.randn(2, heads, n, dim // heads, device=device, dtype=torch.bfloat16, requires_grad=True)
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
        return "flash attention usable at the model's head sizes (bf16)"
    except RuntimeError as e:
        return f"flash attention NOT usable: {str(e).splitlines()[0][:120]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["mae_vit_base_patch8_128:2", "mae_vit_tiny_patch8_64:32"],
                    help="name:batch pairs")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per row and round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each times every row once, in turn")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                    help="bf16 autocast rows: auto = only where bf16 is native (CUDA, AVX-512 BF16 / AMX CPUs)")
    ap.add_argument("--compile", action="store_true", help="add torch.compile rows")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default, max-autotune, ...)")
    ap.add_argument("--mask-ratio", type=float, default=0.9)
    ap.add_argument("--profile", action="store_true", help="then print where one step of each row spends its time")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    native = native_bf16(device)
    bf16_row = args.bf16 == "on" or (args.bf16 == "auto" and native)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{cpu_name()}, {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
    print(f"{datetime.date.today()}  {machine}  torch {torch.__version__}  native bf16: {'yes' if native else 'no'}"
          f"  {args.rounds} rounds x {args.steps} timed steps  OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
          f"  load average {load_average()}")
    peaks = {"fp32": Peak(), "bf16": Peak()} | ({"fp16": Peak()} if device.type == "cuda" else {})
    cpu = device.type == "cpu"
    for spec in args.configs:
        name, batch = spec.split(":")
        batch = int(batch)
        rows = build_rows(name, device, args, bf16_row)
        cfg = rows[1].model.cfg
        s = cfg.img_size
        x = torch.rand(batch, cfg.num_bands, s, s, device=device)
        for r in range(args.rounds):
            for dtype, p in zip((torch.float32, torch.bfloat16, torch.float16), peaks.values()):
                if dtype == torch.float32 or r == 0 or native:  # emulated bf16 (a CPU without it): once, it is slow
                    p.measure(dtype, device, 1.0 if dtype == torch.float32 else 0.5)
            for row in rows:
                row.time(x, args.steps, args.mask_ratio)
        flops = mae_step_flops(cfg, 1, args.mask_ratio)
        print("\nmeasured GEMM peak: " + ", ".join(f"{k} {v.wall / 1e9:.1f} GFLOP/s" +
                                                  (f" ({v.cpu / 1e9:.1f} per CPU-second)" if cpu else "")
                                                  for k, v in peaks.items()))
        if cpu and not native:
            print(f"  bf16 is emulated on this CPU ({peaks['bf16'].wall / 1e9:.1f} vs {peaks['fp32'].wall / 1e9:.1f} "
                  f"GFLOP/s fp32): bf16 autocast cannot pay off here" +
                  ("" if bf16_row else "; its rows are skipped (--bf16 on runs them)"))
        print(f"{name}  batch {batch}  mask {args.mask_ratio}  ({flops / 1e9:.1f} GFLOP per image per step; "
              f"attention: {check_flash(device, cfg)}; load average now {load_average()})")
        base = rows[0]
        for row in rows:
            if row.failed or not row.rounds:
                print(f"  {row.label:28s} failed: {row.failed}")
                continue
            wall = min(w for w, _ in row.rounds)
            ips = batch * args.steps / wall
            worst = batch * args.steps / max(w for w, _ in row.rounds)
            peak = peaks[row.precision]
            line = (f"  {row.label:28s} {ips:9.2f} img/s (range {worst:.2f}-{ips:.2f})   "
                    f"{ips * flops / 1e9:8.1f} GFLOP/s  {100 * ips * flops / peak.wall:5.1f}% of the {row.precision} peak"
                    f"{' (MFU)' if not cpu else ''}")
            if cpu and peak.cpu:
                cpu_s = min(c for _, c in row.rounds)
                line += f"  (cpu-time {100 * batch * args.steps * flops / cpu_s / peak.cpu:5.1f}%)"
            if row is not base and base.rounds and not base.failed:
                ratios = [b[0] / w[0] for b, w in zip(base.rounds, row.rounds)]
                line += (f"   x{min(w for w, _ in base.rounds) / wall:5.2f} vs official "
                         f"(per round x{min(ratios):.2f}-x{max(ratios):.2f})")
            print(line)
        if args.profile:
            for row in rows:
                if not row.failed:
                    print(f"\n{row.label}: one step by operator (self time)\n"
                          f"{profile_table(row, x, args.mask_ratio, peaks[row.precision].wall)}")


if __name__ == "__main__":
    main()
