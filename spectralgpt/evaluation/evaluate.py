"""Evaluation stage: a fine-tuned model on a held-out split of its corpus, with the task's metrics over the
whole split, a report (metrics.json, per_class.csv, figures) and the data version it was measured on."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from spectralgpt.evaluation.metrics import task_metrics
from spectralgpt.evaluation.report import save_report
from spectralgpt.io.shards import ShardCorpus
from spectralgpt.models import load_model
from spectralgpt.training.tasks import task_dataset

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate(model_dir: str | Path, corpus_dir: str | Path, split: str = "test", batch_size: int = 32,
             out_dir: str | Path | None = None, legacy: dict | None = None, device: str = "cpu") -> dict:
    """-> flat metrics dict (plus `data_version`, `split`, `num_items`); writes the report when `out_dir`."""
    model, meta = load_model(model_dir)
    model.to(device)
    extra = meta.get("extra") or {}
    task = extra.get("task")
    if task is None:
        raise ValueError(f"{model_dir} records no task: not a fine-tuned model")
    corpus = ShardCorpus(corpus_dir, split=split)
    if len(corpus) == 0:
        raise ValueError(f"{corpus_dir} has no {split!r} samples to evaluate on")
    dataset = task_dataset(task, corpus, model.cfg.img_size, train=False, recipe=meta.get("normalization") or "auto")
    num_classes = model.cfg.num_classes
    options = dict(legacy or {})
    if task in ("segmentation", "change"):
        options.setdefault("ignore_index", extra.get("ignore_index", 255))
    if task in ("multilabel", "change"):
        options.setdefault("inputs", "logits")
    metrics = task_metrics(task, num_classes, **options)
    for start in range(0, len(dataset), batch_size):
        batch = dataset.batch(list(range(start, min(start + batch_size, len(dataset)))))
        x = batch["image"].to(device)
        if task == "change":
            logits = model(x, batch["image2"].to(device))
            target = batch["mask"]
        elif task == "segmentation":
            logits, target = model(x), batch["mask"]
        else:
            logits, target = model(x), batch["label"]
        metrics.update(logits.float().cpu(), target)
    values = metrics.compute()
    values.update(data_version=corpus.manifest.get("fingerprint"), split=split, num_items=len(dataset),
                  primary_metric=metrics.primary)
    if out_dir is not None:
        save_report(values, out_dir, task, class_names=extra.get("class_names"), confusion=metrics.confusion_matrix())
    log.info("%s on %s/%s: %s = %s", task, Path(corpus_dir).name, split, metrics.primary, values[metrics.primary])
    return values
