"""Images/second of one full MAE training step (forward, backward, AdamW step), side by side in one run:

  reference  the published formulas restated plainly (Conv3d, explicit softmax attention, fp32)
  fast fp32  spectralgpt.models.SpectralMAE (fused q/k/v, scaled_dot_product_attention, kept-token embedding)
  fast bf16  the same under bf16 autocast

    python benchmarks/train_step.py [--steps 5] [--configs mae_vit_base_patch8_128:2 mae_vit_tiny_patch8_64:32]

Every row also reports its model FLOP rate and its utilisation of the hardware's limit: the GEMM peak measured
in the same run, with the same thread count (fp32 rows against the fp32 matmul peak, bf16/fp16 rows against
the bf16/fp16 one). On a CUDA device it also reports fp16 autocast with a grad scaler.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from spectralgpt.models import create_model
from spectralgpt.models.reference import ReferenceMAE


def mae_step_flops(cfg, batch: int, mask_ratio: float) -> float:
    """Matmul FLOPs of forward + backward (3x forward) of one MAE step."""
    n, keep = cfg.num_tokens, int(cfg.num_tokens * (1 - mask_ratio))

    def blocks(tokens, dim, depth):  # q/k/v/proj + MLP matmuls, then QK^T and AV
        return depth * (8 * tokens * dim**2 + 4 * cfg.mlp_ratio * tokens * dim**2 + 4 * tokens**2 * dim)

    fwd = 2 * keep * cfg.patch_dim * cfg.embed_dim
    fwd += blocks(keep, cfg.embed_dim, cfg.depth)
    fwd += 2 * keep * cfg.embed_dim * cfg.decoder_embed_dim
    fwd += blocks(n, cfg.decoder_embed_dim, cfg.decoder_depth)
    fwd += 2 * n * cfg.decoder_embed_dim * cfg.patch_dim
    return 3 * fwd * batch


def gemm_peak(dtype: torch.dtype, device: torch.device, budget_s: float = 3.0) -> float:
    """The best FLOP/s of square matmuls in `dtype` on `device`: the practical peak a step can reach. Sizes grow
    (512, 1024, ... up to 2048 on a CPU, 8192 on a GPU) while one product takes under 0.2 s, and each size is
    timed for at most `budget_s` (a CPU without native bf16 runs it emulated, hundreds of times slower)."""
    best = 0.0
    for n in (512, 1024, 2048, 4096, 8192):
        if n > (8192 if device.type == "cuda" else 2048):
            break
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        (a @ b).sum().item()  # warm-up
        start, took = time.perf_counter(), 0.0
        while time.perf_counter() - start < budget_s:
            t0 = time.perf_counter()
            (a @ b).sum().item()
            took = time.perf_counter() - t0
            best = max(best, 2 * n**3 / took)
        if took > 0.2:
            break
    return best


def time_steps(model, x, steps, autocast_dtype=None, scaler=None, mask_ratio=0.9):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
    device = x.device.type
    ctx = (lambda: torch.autocast(device, dtype=autocast_dtype)) if autocast_dtype else contextlib.nullcontext

    def step():
        with ctx():
            loss = model(x, mask_ratio)[0]
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    step()  # warm-up (allocations, kernel selection)
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * x.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["mae_vit_base_patch8_128:2", "mae_vit_tiny_patch8_64:32"],
                    help="name:batch pairs")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else torch.get_num_threads()} "
          f"{'' if device.type == 'cuda' else 'threads'}), torch {torch.__version__}, {args.steps} timed steps")
    peaks = {"fp32": gemm_peak(torch.float32, device), "bf16": gemm_peak(torch.bfloat16, device)}
    if device.type == "cuda":
        peaks["fp16"] = gemm_peak(torch.float16, device)
    print("measured GEMM peak: " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in peaks.items()))
    if peaks["bf16"] < peaks["fp32"]:
        print("  (bf16 matmuls are slower than fp32 here: this processor has no native bf16, so bf16 autocast "
              "cannot pay off; its utilisation figure is not meaningful)")
    for spec in args.configs:
        name, batch = spec.split(":")
        batch = int(batch)
        torch.manual_seed(0)
        fast = create_model(name).to(device).train()
        ref = ReferenceMAE(fast.cfg).to(device).train()
        ref.load_state_dict(fast.state_dict())
        s = fast.cfg.img_size
        x = torch.rand(batch, fast.cfg.num_bands, s, s, device=device)
        rows = [("reference fp32", time_steps(ref, x, args.steps)),
                ("fast fp32", time_steps(fast, x, args.steps)),
                ("fast bf16 autocast", time_steps(fast, x, args.steps, torch.bfloat16))]
        if device.type == "cuda":
            rows.append(("fast fp16 autocast + scaler",
                         time_steps(fast, x, args.steps, torch.float16, torch.amp.GradScaler("cuda"))))
        base = rows[0][1]
        flops = mae_step_flops(fast.cfg, 1, 0.9)
        print(f"\n{name}  batch {batch}  mask 0.9  ({flops / 1e9:.1f} GFLOP per image per step)")
        for label, ips in rows:
            peak = peaks["bf16" if "bf16" in label else "fp16" if "fp16" in label else "fp32"]
            rate = ips * flops
            print(f"  {label:28s} {ips:9.2f} img/s   x{ips / base:5.2f} vs reference   {rate / 1e9:8.1f} GFLOP/s"
                  f"   {100 * rate / peak:5.1f}% of the measured {'bf16' if 'bf16' in label else 'fp16' if 'fp16' in label else 'fp32'} peak")


if __name__ == "__main__":
    main()
