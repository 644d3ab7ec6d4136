"""Evaluation stage: a fine-tuned model on a held-out split of its corpus, with the task's metrics over the
whole split, a report (metrics.json, per_class.csv, figures) and the data version it was measured on.

Dense tasks are scored on whole scenes: the tiles a scene was cut into are predicted, stitched back (overlaps
averaged) and every pixel counts once. `legacy={"oscd_legacy_patch_eval": True}` scores the stored tiles one by
one instead, so that pixels in overlapping tiles count several times, as the published OSCD evaluation did."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from spectralgpt.device import resolve_device
from spectralgpt.evaluation.metrics import task_metrics
from spectralgpt.evaluation.report import save_report
from spectralgpt.io.shards import ShardCorpus
from spectralgpt.models import load_model
from spectralgpt.training.tasks import task_dataset

log = logging.getLogger(__name__)


class Scenes:
    """Stitches tile predictions back into their scenes (index columns sample, row_off, col_off, window);
    a scene is handed to the metrics, as log-probabilities and its mask, once all its tiles are in."""

    def __init__(self, corpus: ShardCorpus, ignore_index: int):
        index = corpus.index
        self.scene_of = index["sample"].to_numpy()
        self.row, self.col = index["row_off"].to_numpy(), index["col_off"].to_numpy()
        self.win = index["window"].to_numpy()
        self.left = index.groupby("sample").size().to_dict()
        self.ignore, self.open = ignore_index, {}

    def add(self, indices, probs: torch.Tensor, target: torch.Tensor):
        for k, i in enumerate(indices):
            s = self.scene_of[i]
            if s not in self.open:
                rows = self.scene_of == s
                h, w = int((self.row + self.win)[rows].max()), int((self.col + self.win)[rows].max())
                self.open[s] = (torch.zeros(probs.shape[1], h, w), torch.zeros(h, w),
                                torch.full((h, w), self.ignore, dtype=target.dtype))
            acc, count, mask = self.open[s]
            r, c, n = int(self.row[i]), int(self.col[i]), int(self.win[i])
            acc[:, r:r + n, c:c + n] += probs[k]
            count[r:r + n, c:c + n] += 1
            mask[r:r + n, c:c + n] = target[k]
            self.left[s] -= 1
            if self.left[s] == 0:
                acc, count, mask = self.open.pop(s)
                yield (acc / count.clamp_min(1)).clamp_min(1e-12).log()[None], mask[None]


@torch.no_grad()
def evaluate(model_dir: str | Path, corpus_dir: str | Path, split: str = "test", batch_size: int = 32,
             out_dir: str | Path | None = None, legacy: dict | None = None, device: str = "auto") -> dict:
    """-> flat metrics dict (plus `data_version`: the content digest of the evaluated split, `split`,
    `num_items`); writes the report when `out_dir`.
    device "auto": cuda when there is a GPU, else cpu."""
    device = resolve_device(device)
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
    per_tile = bool(options.pop("oscd_legacy_patch_eval", False))
    metrics = task_metrics(task, num_classes, **options)
    stitch = task in ("segmentation", "change") and not per_tile and dataset.size == corpus.size
    scenes = Scenes(corpus, options.get("ignore_index", 255)) if stitch else None
    for start in range(0, len(dataset), batch_size):
        indices = list(range(start, min(start + batch_size, len(dataset))))
        batch = dataset.batch(indices)
        x = batch["image"].to(device)
        if task == "change":
            logits = model(x, batch["image2"].to(device))
            target = batch["mask"]
        elif task == "segmentation":
            logits, target = model(x), batch["mask"]
        else:
            logits, target = model(x), batch["label"]
        if scenes is not None:
            for done in scenes.add(indices, logits.float().softmax(1).cpu(), target):
                metrics.update(*done)
        else:
            metrics.update(logits.float().cpu(), target)
    values = metrics.compute()
    values.update(data_version=corpus.content_digest, split=split, num_items=len(dataset),
                  primary_metric=metrics.primary,
                  scored_on="scenes" if scenes is not None else ("tiles" if task in ("segmentation", "change") else "images"))
    if out_dir is not None:
        save_report(values, out_dir, task, class_names=extra.get("class_names"), confusion=metrics.confusion_matrix())
    log.info("%s on %s/%s: %s = %s", task, Path(corpus_dir).name, split, metrics.primary, values[metrics.primary])
    return values
