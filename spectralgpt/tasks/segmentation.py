"""Semantic segmentation (SegMunich): per-pixel cross-entropy (class weights, ignored pixels), mIoU as the
primary metric, scored on whole stitched scenes, the arg-max class map as the decision.

SegMunich stores no validation split: it validates on a hold-out of the training scenes (`val_split: train`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spectralgpt.tasks.base import StepFn, Task


def segmentation_step(ignore_index: int = 255, class_weights: list[float] | None = None) -> StepFn:
    def step(model, batch):
        logits = model(batch["image"]).float()
        w = None if class_weights is None else torch.tensor(class_weights, device=logits.device)
        return F.cross_entropy(logits, batch["mask"], weight=w, ignore_index=ignore_index), {}

    return step


class Segmentation(Task):
    name = "segmentation"
    model_kind = "segmentation"
    primary_metric = "miou"
    target = "mask"
    dense = True
    class_weights = True
    fit = "tile"  # scenes are cut into tiles, stitched back at evaluation
    val_split = "train"

    def dataset(self, corpus, size, train, recipe="auto"):
        from spectralgpt.data.datasets import SegmentationDataset

        return SegmentationDataset(corpus, size=size, train=train, recipe=recipe)

    def step(self, cfg, num_classes=None, corpus=None):
        weights = cfg.class_weights
        return segmentation_step(cfg.ignore_index, None if weights == "auto" else weights)

    def metric_options(self, extra):
        return {"ignore_index": extra.get("ignore_index", 255)}

    def metrics(self, num_classes, extra=None, **options):
        from spectralgpt.evaluation.metrics import SegmentationMetrics

        return SegmentationMetrics(num_classes, **{**self.metric_options(extra or {}), **options})


TASK = Segmentation()
