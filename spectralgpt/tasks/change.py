"""Change detection (OSCD): two dates through one siamese model, weighted per-pixel cross-entropy (the published
weights from the change fraction with `class_weights: auto`), the change class' F1 as the primary metric, the
change map as the decision.

OSCD stores no validation split: it validates on a hold-out of the training scenes (`val_split: train`)."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from spectralgpt.tasks.base import StepFn, Task

log = logging.getLogger(__name__)


def change_step(class_weights: list[float] | None, ignore_index: int = 255) -> StepFn:
    def step(model, batch):
        logits = model(batch["image"], batch["image2"]).float()
        w = None if class_weights is None else torch.tensor(class_weights, device=logits.device)
        return F.cross_entropy(logits, batch["mask"], weight=w, ignore_index=ignore_index), {}

    return step


def published_change_weights(change_fraction: float, fp_modifier: float = 10.0) -> list[float]:
    """The published OSCD weights for (no change, change): [fp_modifier * 2p, 2 (1 - p)], p = changed pixels."""
    p = change_fraction
    return [fp_modifier * 2 * p, 2 * (1 - p)]


def change_fraction(corpus) -> float:
    changed = total = 0
    for i in range(len(corpus)):
        m = np.asarray(corpus[i]["label"])
        changed += int((m == 1).sum())
        total += int(((m == 0) | (m == 1)).sum())
    return changed / max(total, 1)


class Change(Task):
    name = "change"
    model_kind = "change"
    primary_metric = "f1"
    target = "mask"
    dense = True
    dates = 2
    fixed_classes = 2
    class_names = ["no_change", "change"]
    class_weights = True
    fit = "tile"
    val_split = "train"
    map_band = "change"

    def dataset(self, corpus, size, train, recipe="auto"):
        from spectralgpt.data.datasets import ChangeDetectionDataset

        return ChangeDetectionDataset(corpus, size=size, train=train, recipe=recipe)

    def step(self, cfg, num_classes=None, corpus=None):
        weights = cfg.class_weights
        if weights == "auto":
            weights = published_change_weights(change_fraction(corpus))
            log.info("change-detection class weights (published formula): %s", weights)
        return change_step(weights, cfg.ignore_index)

    def forward(self, model, batch):
        return model(batch["image"], batch["image2"])

    def metric_options(self, extra):
        return {"ignore_index": extra.get("ignore_index", 255), "inputs": "logits"}

    def metrics(self, num_classes, extra=None, **options):
        from spectralgpt.evaluation.metrics import ChangeMetrics

        return ChangeMetrics(num_classes, **{**self.metric_options(extra or {}), **options})


TASK = Change()
