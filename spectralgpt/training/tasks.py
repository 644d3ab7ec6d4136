"""What each task optimises: the model kind it needs, its dataset, and its loss (one `step_fn` per task)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from spectralgpt.data.datasets import (ChangeDetectionDataset, ClassificationDataset, PretrainDataset,
                                       SegmentationDataset)


def task_dataset(task: str, corpus, size: int, train: bool, recipe="auto"):
    if task in ("classification", "multilabel"):
        return ClassificationDataset(corpus, size=size, train=train, recipe=recipe)
    if task == "segmentation":
        return SegmentationDataset(corpus, size=size, train=train, recipe=recipe)
    if task == "change":
        return ChangeDetectionDataset(corpus, size=size, train=train, recipe=recipe)
    if task == "pretrain":
        return PretrainDataset(corpus, size=size, train=train)
    raise ValueError(f"unknown task {task!r}")


def mae_step(mask_ratio: float) -> Callable:
    def step(model, batch):
        loss, _, _, terms = model(batch["image"], mask_ratio, return_terms=True)
        return loss, terms

    return step


def mix(images: torch.Tensor, targets: torch.Tensor, mixup: float, cutmix: float):
    """Batch mixup (alpha `mixup`) or cutmix (alpha `cutmix`), chosen with equal odds when both are on;
    targets are one-hot/soft (B, C). Returns mixed images and soft targets."""
    use_cutmix = cutmix > 0 and (mixup <= 0 or torch.rand(()) < 0.5)
    alpha = cutmix if use_cutmix else mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(images.shape[0], device=images.device)
    if use_cutmix:
        h, w = images.shape[-2:]
        ch, cw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        images = images.clone()
        images[..., y0:y1, x0:x1] = images[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        images = lam * images + (1 - lam) * images[perm]
    return images, lam * targets + (1 - lam) * targets[perm]


def classification_step(num_classes: int, label_smoothing: float = 0.1, mixup: float = 0.0, cutmix: float = 0.0):
    """Cross-entropy with label smoothing; with mixup/cutmix, soft targets (smoothing folded in)."""

    def step(model, batch):
        x, y = batch["image"], batch["label"]
        if model.training and (mixup > 0 or cutmix > 0):
            soft = F.one_hot(y, num_classes).float() * (1 - label_smoothing) + label_smoothing / num_classes
            x, soft = mix(x, soft, mixup, cutmix)
            logits = model(x)
            return torch.sum(-soft * F.log_softmax(logits.float(), dim=-1), dim=-1).mean(), {}
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing if model.training else 0.0)
        return loss, {"accuracy": (logits.argmax(-1) == y).float().mean().detach()}

    return step


def multilabel_step():
    """Sigmoid binary cross-entropy averaged over classes (= MultiLabelSoftMarginLoss)."""

    def step(model, batch):
        return F.binary_cross_entropy_with_logits(model(batch["image"]).float(), batch["label"].float()), {}

    return step


def segmentation_step(ignore_index: int = 255, class_weights: list[float] | None = None):
    def step(model, batch):
        logits = model(batch["image"]).float()
        w = None if class_weights is None else torch.tensor(class_weights, device=logits.device)
        return F.cross_entropy(logits, batch["mask"], weight=w, ignore_index=ignore_index), {}

    return step


def change_step(class_weights: list[float] | None, ignore_index: int = 255):
    def step(model, batch):
        logits = model(batch["image"], batch["image2"]).float()
        w = None if class_weights is None else torch.tensor(class_weights, device=logits.device)
        return F.cross_entropy(logits, batch["mask"], weight=w, ignore_index=ignore_index), {}

    return step


def published_change_weights(change_fraction: float, fp_modifier: float = 10.0) -> list[float]:
    """The published OSCD weights for (no change, change): [fp_modifier * 2p, 2 (1 - p)], p = changed pixels."""
    p = change_fraction
    return [fp_modifier * 2 * p, 2 * (1 - p)]
