"""Single-label scene classification (EuroSAT): cross-entropy with label smoothing, optional mixup/cutmix,
overall accuracy as the primary metric, the arg-max class as the decision."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spectralgpt.tasks.base import StepFn, Task


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


def classification_step(num_classes: int, label_smoothing: float = 0.1, mixup: float = 0.0,
                        cutmix: float = 0.0) -> StepFn:
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


class Classification(Task):
    name = "classification"
    model_kind = "classifier"
    primary_metric = "overall_accuracy"
    recipe = "zscore"

    def dataset(self, corpus, size, train, recipe="auto"):
        from spectralgpt.data.datasets import ClassificationDataset

        return ClassificationDataset(corpus, size=size, train=train, recipe=recipe)

    def step(self, cfg, num_classes=None, corpus=None):
        return classification_step(num_classes, cfg.label_smoothing, cfg.mixup, cfg.cutmix)

    def metrics(self, num_classes, extra=None, **options):
        from spectralgpt.evaluation.metrics import ClassificationMetrics

        return ClassificationMetrics(num_classes, **{**self.metric_options(extra or {}), **options})


TASK = Classification()
