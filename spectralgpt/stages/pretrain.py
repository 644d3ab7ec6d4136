"""Pretraining stage: progressive MAE stages (e.g. 96 px then 128 px), each continuing from the previous one
with its spatial position tables interpolated; reconstruction figures; the final encoder + decoder saved as
safetensors + config.json.

Each stage runs in ``runs/pretrain/<n>-<name>/``, keyed by content: the corpus' content digest, the digest of
the weights it starts from (the previous stage's model, `init`, or none) and its settings. A finished stage or
checkpoint is reused only for the same inputs; otherwise it is refused, the reason logged, and the stage trains
from scratch. The model's initial weights are drawn after seeding, so two runs on the same inputs give
bit-identical weights. Every declared output (model, figures, history, metrics) is written on every run, also
when all stages are reused.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from spectralgpt.config import PretrainConfig
from spectralgpt.data.normalize import MinMax
from spectralgpt.evaluation.reconstruction import save_reconstruction_figure
from spectralgpt.io.atomic import atomic_write_text
from spectralgpt.io.shards import ShardCorpus
from spectralgpt.models import create_model, load_model, load_pretrained, model_digest, save_model
from spectralgpt.stages.runs import open_run, settings_digest
from spectralgpt.training.distributed import is_main, rank_world
from spectralgpt.training.engine import Callback, fit
from spectralgpt.training.history import History, write_csv
from spectralgpt.tasks import get_task

log = logging.getLogger(__name__)


class Figures(Callback):
    """Reconstruction figure of a fixed batch every `every` epochs, and ``final.png`` when training ends (before
    the loggers' own end of training, so they upload it with the rest)."""

    def __init__(self, model, images: torch.Tensor, folder: Path, mask_ratio: float, every: int):
        self.model, self.images, self.folder, self.mask_ratio, self.every = model, images, folder, mask_ratio, every

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.every and epoch % self.every == 0:
            device = next(self.model.parameters()).device
            save_reconstruction_figure(self.model, self.images.to(device), self.folder / f"epoch-{epoch:04d}.png",
                                       self.mask_ratio)

    def on_train_end(self, result) -> None:
        device = next(self.model.parameters()).device
        save_reconstruction_figure(self.model, self.images.to(device), self.folder / "final.png", self.mask_ratio)


@dataclass
class PretrainResult:
    model_dir: Path
    metrics: dict
    history: list[dict]
    lineage: dict


def stage_inputs(cfg: PretrainConfig, i: int, corpus: ShardCorpus, start: str | None) -> dict:
    """What stage `i` is computed from: corpus content, starting weights, settings."""
    stage = cfg.stages[i - 1]
    return {"corpus": corpus.content_digest, "start": model_digest(start) if start else "none",
            "settings": settings_digest(cfg.model, cfg.model_overrides, cfg.mask_ratio, stage, cfg.train),
            "world_size": rank_world()[1]}  # processes change the effective batch and the data order


def fixed_images(corpus: ShardCorpus, size: int) -> torch.Tensor:
    """The same few images in every figure of a stage."""
    return get_task("pretrain").dataset(corpus, size, train=False).batch(list(range(min(4, len(corpus)))))["image"]


def run_stage(cfg: PretrainConfig, i: int, corpus: ShardCorpus, start: str | None, sdir: Path, callbacks) -> None:
    """Train stage `i` in `sdir` (resuming a checkpoint of the same inputs) and save its model there."""
    stage = cfg.stages[i - 1]
    train = cfg.train.model_copy(update={"epochs": stage.epochs, **({"blr": stage.blr} if stage.blr else {})})
    inputs = stage_inputs(cfg, i, corpus, start)
    torch.manual_seed(train.seed)  # the initial weights are part of what a seed reproduces
    model = create_model(cfg.model, img_size=stage.img_size, **cfg.model_overrides)
    if start:
        log.info("stage %s starts from %s: %s", stage.name, start, load_pretrained(model, start))
    task = get_task("pretrain")
    dataset = task.dataset(corpus, stage.img_size, train=True)
    fixed = fixed_images(corpus, stage.img_size)
    figures = Figures(model, fixed, sdir / "figures", cfg.mask_ratio, cfg.figures_every)
    history = History(sdir / "history.jsonl", stage=stage.name)
    fit(model, task.step(cfg), dataset, train, sdir, [history, figures, *callbacks], inputs=inputs)
    if is_main():
        save_model(model, sdir / "model", normalization=MinMax().to_dict(), extra={"stage": stage.name,
                                                                                   "inputs": inputs})


def pretrain(cfg: PretrainConfig, work: str | Path = "runs/pretrain", reports: str | Path = "reports/pretrain",
             callbacks=()) -> PretrainResult:
    work, reports, out = Path(work), Path(reports), Path(cfg.out)
    start, rows, metrics = cfg.init, [], {}
    corpora = []
    for i, stage in enumerate(cfg.stages, 1):
        corpus = ShardCorpus(Path(cfg.shards) / stage.corpus)
        corpora.append(corpus)
        inputs = stage_inputs(cfg, i, corpus, start)
        sdir = open_run(work / f"{i}-{stage.name}", inputs)
        if (sdir / "model" / "config.json").exists():
            log.info("pretraining stage %s: reusing the finished run in %s (same inputs)", stage.name, sdir)
        else:
            run_stage(cfg, i, corpus, start, sdir, callbacks)
        offset = rows[-1]["global_step"] if rows else 0
        stage_rows = [{**r, "global_step": offset + r["step"]} for r in History(sdir / "history.jsonl").rows()]
        rows += stage_rows
        if stage_rows:
            metrics[f"{stage.name}_loss"] = stage_rows[-1]["loss"]
        start = str(sdir / "model")
    lineage = {"corpus_digest": corpora[-1].content_digest,
               "corpus_digests": {s.name: c.content_digest for s, c in zip(cfg.stages, corpora)},
               "init_digest": model_digest(cfg.init) if cfg.init else "none"}
    if not is_main():
        return PretrainResult(out, metrics, rows, lineage)
    model, _ = load_model(start)
    save_model(model, out, normalization=MinMax().to_dict(),
               extra={"stages": [s.model_dump() for s in cfg.stages], "mask_ratio": cfg.mask_ratio,
                      "lineage": lineage})
    metrics["final_loss"] = rows[-1]["loss"] if rows else None
    write_csv(rows, reports / "history.csv")
    atomic_write_text(reports / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    publish_figures(work, cfg, reports / "figures")
    last = cfg.stages[-1]
    save_reconstruction_figure(model, fixed_images(corpora[-1], last.img_size), reports / "reconstruction.png",
                               cfg.mask_ratio)
    lineage["model_digest"] = model_digest(out)
    return PretrainResult(out, metrics, rows, lineage)


def publish_figures(work: Path, cfg: PretrainConfig, dest: Path) -> None:
    """Copy every stage's figures from its run folder to `dest/<stage>/` (fresh: no figure of another run)."""
    if dest.exists():
        shutil.rmtree(dest)
    for i, stage in enumerate(cfg.stages, 1):
        src = work / f"{i}-{stage.name}" / "figures"
        if src.is_dir():
            shutil.copytree(src, dest / stage.name)
    dest.mkdir(parents=True, exist_ok=True)
