"""Pretraining stage: progressive MAE stages (e.g. 96 px then 128 px), each continuing from the previous one
with its spatial position tables interpolated; reconstruction figures; the final encoder + decoder saved as
safetensors + config.json."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from spectralgpt.config import PretrainConfig
from spectralgpt.data.normalize import MinMax
from spectralgpt.evaluation.reconstruction import save_reconstruction_figure
from spectralgpt.io.atomic import atomic_write_text
from spectralgpt.io.shards import ShardCorpus
from spectralgpt.models import create_model, load_model, load_pretrained, save_model
from spectralgpt.training.distributed import is_main
from spectralgpt.training.engine import Callback, fit
from spectralgpt.training.history import History, write_csv
from spectralgpt.training.tasks import mae_step, task_dataset

log = logging.getLogger(__name__)
#: settings that change how a run goes but not what it computes: they do not change the run's fingerprint
NEUTRAL = {"progress", "num_workers", "log_every", "checkpoint_every", "keep_checkpoints", "device", "augment_on"}


def fingerprint(*parts) -> str:
    """A short hash of what determines a run's result (config + data), naming its work folder."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in sorted(x.items()) if k not in NEUTRAL}
        return x

    return hashlib.sha256(json.dumps([clean(p) for p in parts], sort_keys=True, default=str).encode()).hexdigest()[:12]


class Figures(Callback):
    """Reconstruction figure of a fixed batch every `every` epochs."""

    def __init__(self, model, images: torch.Tensor, folder: Path, mask_ratio: float, every: int):
        self.model, self.images, self.folder, self.mask_ratio, self.every = model, images, folder, mask_ratio, every

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.every and epoch % self.every == 0:
            device = next(self.model.parameters()).device
            save_reconstruction_figure(self.model, self.images.to(device), self.folder / f"epoch-{epoch:04d}.png",
                                       self.mask_ratio)


@dataclass
class PretrainResult:
    model_dir: Path
    metrics: dict
    history: list[dict]


def pretrain(cfg: PretrainConfig, work: str | Path = "runs/pretrain", reports: str | Path = "reports/pretrain",
             callbacks=()) -> PretrainResult:
    work, reports, out = Path(work), Path(reports), Path(cfg.out)
    previous, model, rows, metrics = cfg.init, None, [], {}
    for i, stage in enumerate(cfg.stages, 1):
        corpus = ShardCorpus(Path(cfg.shards) / stage.corpus)
        train = cfg.train.model_copy(update={"epochs": stage.epochs, **({"blr": stage.blr} if stage.blr else {})})
        key = fingerprint(cfg.model, cfg.model_overrides, cfg.mask_ratio, stage.model_dump(), train.model_dump(),
                          corpus.manifest.get("fingerprint"), str(previous), i)
        sdir = work / f"{i}-{stage.name}-{key}"
        model = create_model(cfg.model, img_size=stage.img_size, **cfg.model_overrides)
        history = History(sdir / "history.jsonl", stage=stage.name)
        if (sdir / "model" / "config.json").exists():
            log.info("pretraining stage %s already complete in %s", stage.name, sdir)
            model, _ = load_model(sdir / "model")
        else:
            if previous:
                report = load_pretrained(model, previous)
                log.info("stage %s starts from %s: %s", stage.name, previous, report)
            dataset = task_dataset("pretrain", corpus, stage.img_size, train=True)
            fixed = task_dataset("pretrain", corpus, stage.img_size, train=False).batch(list(range(min(4, len(corpus)))))
            figures = Figures(model, fixed["image"], reports / "figures" / stage.name, cfg.mask_ratio, cfg.figures_every)
            result = fit(model, mae_step(cfg.mask_ratio), dataset, train, sdir, [history, figures, *callbacks])
            if is_main():
                save_reconstruction_figure(model, fixed["image"].to(next(model.parameters()).device),
                                           figures.folder / "final.png", cfg.mask_ratio)
                save_model(model, sdir / "model", normalization=MinMax().to_dict(),
                           extra={"stage": stage.name, "images_per_second": result.images_per_second})
        offset = rows[-1]["global_step"] if rows else 0
        stage_rows = [{**r, "global_step": offset + r["step"]} for r in history.rows()]
        rows += stage_rows
        if stage_rows:
            metrics[f"{stage.name}_loss"] = stage_rows[-1]["loss"]
        previous = sdir / "model"
    if not is_main():
        return PretrainResult(out, metrics, rows)
    model.eval()
    save_model(model, out, normalization=MinMax().to_dict(),
               extra={"stages": [s.model_dump() for s in cfg.stages], "mask_ratio": cfg.mask_ratio})
    metrics["final_loss"] = rows[-1]["loss"] if rows else None
    write_csv(rows, reports / "history.csv")
    atomic_write_text(reports / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    last = cfg.stages[-1]
    fixed = task_dataset("pretrain", ShardCorpus(Path(cfg.shards) / last.corpus), last.img_size, train=False)
    save_reconstruction_figure(model, fixed.batch(list(range(min(4, len(fixed)))))["image"],
                               reports / "reconstruction.png", cfg.mask_ratio)
    return PretrainResult(out, metrics, rows)
