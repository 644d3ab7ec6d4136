"""A validated fine-tuning run of the real stage on a tiny classification corpus, for the SIGKILL resume test.

    python tests/scripts/finetune_tiny.py SHARDS OUT [--slow SECONDS] [--batch N]

Writes OUT/model (the selected weights), OUT/reports/classification/{train_metrics.json,val_history.csv} and
keeps its run folder in OUT/runs. `--slow` sleeps after each step so that a test can kill the process midway; `--batch` is the batch per process
(under torchrun, 2 processes with --batch 4 train as one with 8).
"""

import argparse
import time

from spectralgpt.config import FinetuneConfig
from spectralgpt.stages.finetune import finetune
from spectralgpt.training import Callback
from spectralgpt.training.distributed import cleanup, init_from_env


class Slow(Callback):
    def __init__(self, seconds):
        self.seconds = seconds

    def on_step(self, step, logs):
        time.sleep(self.seconds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shards")
    ap.add_argument("out")
    ap.add_argument("--slow", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    init_from_env()  # as `spectralgpt finetune` does under torchrun
    cfg = FinetuneConfig(task="classification", model="vit_tiny_patch8_64", mode="scratch", shards=args.shards,
                         out=f"{args.out}/model", validate={"every_steps": 3},
                         train=dict(max_steps=12, batch_size=args.batch, lr=2e-3, warmup_epochs=0, checkpoint_every=2,
                                    log_every=1, deterministic=True, amp="fp32", device="cpu", progress=False, seed=7))
    try:
        finetune(cfg, work=f"{args.out}/runs", reports=f"{args.out}/reports",
                 callbacks=[Slow(args.slow)] if args.slow else [])
    finally:
        cleanup()


if __name__ == "__main__":
    main()
