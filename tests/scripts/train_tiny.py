"""A small training run driven by the real engine, for the resume and DDP tests.

    python tests/scripts/train_tiny.py OUT {mae|classifier} STEPS BATCH [--slow SECONDS]

Rank 0 writes OUT/final.pt (the weights) when training ends. `--slow` sleeps after each step so that a test
can kill the process midway.
"""

import argparse
import time

import torch

from spectralgpt.models import create_model
from spectralgpt.training import Callback, TrainConfig, fit
from spectralgpt.training.distributed import cleanup, init_from_env, is_main


class Images(torch.utils.data.Dataset):
    """Deterministic images; with `augment`, a random brightness drawn from torch's RNG (seeded per batch)."""

    def __init__(self, n=48, size=32, classes=4, augment=True):
        g = torch.Generator().manual_seed(1234)
        self.x = torch.rand(n, 12, size, size, generator=g)
        self.y = torch.arange(n) % classes
        self.augment = augment

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] * (0.5 + torch.rand(1)) if self.augment else self.x[i]
        return {"image": x, "label": self.y[i]}


class Slow(Callback):
    def __init__(self, seconds):
        self.seconds = seconds

    def on_step(self, step, logs):
        time.sleep(self.seconds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("task", choices=["mae", "classifier"])
    ap.add_argument("steps", type=int)
    ap.add_argument("batch", type=int)
    ap.add_argument("--accum", type=int, default=1)
    ap.add_argument("--slow", type=float, default=0.0)
    args = ap.parse_args()
    init_from_env()
    torch.manual_seed(0)
    if args.task == "mae":
        model = create_model("mae_vit_tiny_patch8_64", img_size=32)
        data = Images()

        def step(m, b):
            loss, _, _ = m(b["image"], 0.75)
            return loss, {}
    else:
        model = create_model("vit_tiny_patch8_64", img_size=32, num_classes=4, drop_path_rate=0.0)
        data = Images(augment=False)

        def step(m, b):
            return torch.nn.functional.cross_entropy(m(b["image"]), b["label"]), {}

    cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch, accum_iter=args.accum, blr=1e-3, warmup_epochs=1,
                      checkpoint_every=2, log_every=1, deterministic=True, progress=False, seed=7)
    fit(model, step, data, cfg, args.out, callbacks=[Slow(args.slow)] if args.slow else [])
    if is_main():
        torch.save(model.state_dict(), f"{args.out}/final.pt")
    cleanup()


if __name__ == "__main__":
    main()
