"""Pretraining throughput: a real run from shards (data loading and augmentation included) against the
model-only training step of benchmarks/train_step.py, side by side in one run; then DDP scaling (1 vs 2
processes, gloo on CPU / NCCL on GPU) of the same real run.

    python benchmarks/pretrain_throughput.py [--model mae_vit_small_patch8_128] [--batch 16] [--steps 12]

Data loading costs 1 - real / (fit on one in-memory batch) of the throughput (target: under 10 % on 2 CPU
cores); the model-only step is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spectralgpt.data.synthetic import generate  # noqa: E402
from spectralgpt.io.shards import ShardCorpus  # noqa: E402
from spectralgpt.models import create_model  # noqa: E402
from spectralgpt.training import TrainConfig, fit  # noqa: E402
from spectralgpt.training.distributed import rank_world  # noqa: E402
from spectralgpt.tasks.pretrain import TASK as PRETRAIN, mae_step  # noqa: E402


def build_corpus(root: Path, n: int, size: int) -> Path:
    from spectralgpt.bands import PRETRAIN_BANDS
    from spectralgpt.data.preprocess import preprocess
    from spectralgpt.data.sources import load_dataset

    generate("pretrain", root / "raw", n=n, size=size, workers=2)
    preprocess(load_dataset("folder", root / "raw"), root / "shards", size=size, shard_size=128, workers=2,
               bands=PRETRAIN_BANDS)
    return root / "shards"


def model_only(name: str, batch: int, steps: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = create_model(name).train().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    x = torch.rand(batch, 12, model.cfg.img_size, model.cfg.img_size, device=device)
    cuda = device.type == "cuda"
    warm = warmup(device)
    for i in range(steps + warm):
        if i == warm:
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):  # what fit's amp=auto does
            loss = model(x, 0.9)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def warmup(device) -> int:
    """Untimed first steps: allocations and kernel choice; on a GPU also its clocks coming up."""
    return 10 if torch.device(device).type == "cuda" else 2


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class FixedBatch(torch.utils.data.Dataset):
    """One in-memory batch, served at every step: `fit` with no reading and no augmentation."""

    def __init__(self, n: int, batch: int, size: int):
        self.n, self.x = n, torch.rand(batch, 12, size, size)

    def __len__(self):
        return self.n

    def batch(self, indices):
        return {"image": self.x[:len(indices)]}


def real_run(name: str, corpus: Path, batch: int, steps: int, workers: int, out: Path,
             device: str = "cpu", fixed: bool = False) -> float:
    """A real `fit` from shards (on CUDA: bf16, augmentation on the GPU), or on one fixed in-memory batch;
    throughput after the warm-up steps."""
    torch.manual_seed(0)
    model = create_model(name)
    size = model.cfg.img_size
    dataset = FixedBatch(len(ShardCorpus(corpus)), batch, size) if fixed else \
        PRETRAIN.dataset(ShardCorpus(corpus), size, train=True)
    warm = warmup(device)
    cfg = TrainConfig(max_steps=steps + warm, batch_size=batch, blr=1.5e-4, num_workers=workers, log_every=1,
                      checkpoint_every=10_000, progress=False, device=device,
                      amp="bf16" if device.startswith("cuda") else "fp32")
    result = fit(model, mae_step(0.9), dataset, cfg, out, resume=False)
    world = rank_world()[1]
    timed = result.history[warm:]  # one row per step (log_every=1): images/s of that step, all processes
    seconds = sum(batch * world / r["images_per_second"] for r in timed)
    return len(timed) * batch * world / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mae_vit_small_patch8_128")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ddp-worker", metavar="CORPUS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    logging.basicConfig(level=logging.WARNING)
    size = create_model(args.model).cfg.img_size if not args.ddp_worker else None

    if args.ddp_worker:  # one torchrun process: same per-process batch, rank 0 reports the global rate
        from spectralgpt.training.distributed import cleanup, init_from_env

        rank, _ = init_from_env()
        ips = real_run(args.model, Path(args.ddp_worker), args.batch, args.steps, 0, Path(args.ddp_worker).parent / "ddp",
                       "cpu")
        if rank == 0:
            print(json.dumps({"images_per_second": ips}))
        cleanup()
        return

    with tempfile.TemporaryDirectory() as tmp:
        corpus = build_corpus(Path(tmp), args.images, size)
        print(f"{args.model}, batch {args.batch}, {args.steps} timed steps, {torch.get_num_threads()} threads, "
              f"{args.workers} loader worker(s), device {device}, torch {torch.__version__}")
        ref = model_only(args.model, args.batch, args.steps, device)
        same = real_run(args.model, corpus, args.batch, args.steps, 0, Path(tmp) / "fixed", str(device), fixed=True)
        real = real_run(args.model, corpus, args.batch, args.steps, args.workers, Path(tmp) / "run", str(device))
        print(f"  model-only step (train_step.py path) {ref:8.2f} img/s")
        print(f"  fit() on one in-memory batch         {same:8.2f} img/s")
        print(f"  real run from shards                 {real:8.2f} img/s   data loading costs "
              f"{100 * (1 - real / same):5.1f} % (vs the model-only step {100 * (1 - real / ref):5.1f} %)")
        if device.type == "cuda":
            print("  DDP: skipped (NCCL needs one GPU per process; run torchrun on a multi-GPU machine)")
            return
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, torch.get_num_threads() // 2))}
        one = real_run(args.model, corpus, args.batch, args.steps, 0, Path(tmp) / "one")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               "--master_port=29533", __file__, "--model", args.model, "--batch", str(args.batch), "--steps",
               str(args.steps), "--ddp-worker", str(corpus)]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        two = json.loads(out.strip().splitlines()[-1])["images_per_second"]
        print(f"  DDP: 1 process {one:8.2f} img/s, 2 processes {two:8.2f} img/s   scaling x{two / one:4.2f}")


if __name__ == "__main__":
    main()
