"""Multi-label scene classification (BigEarthNet): sigmoid binary cross-entropy, micro mAP as the primary metric
(threshold-free), and decisions a user can act on: a class is present when its probability reaches its
threshold, chosen on the validation split to maximise F1 (`thresholds: per_class`, one `global` value, or a
fixed number) and saved with the model, so evaluation, `Predictor.decide`, predict and the MLflow model all
apply the same ones."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from spectralgpt.tasks.base import StepFn, Task

log = logging.getLogger(__name__)
DEFAULT_THRESHOLD = 0.5  #: a class without positives in the validation split keeps it


def multilabel_step() -> StepFn:
    """Sigmoid binary cross-entropy averaged over classes (= MultiLabelSoftMarginLoss)."""

    def step(model, batch):
        return F.binary_cross_entropy_with_logits(model(batch["image"]).float(), batch["label"].float()), {}

    return step


def best_threshold(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """The threshold t maximising F1 of `scores >= t` against 0/1 `targets` (1-D): the midpoint between the
    lowest score kept positive and the next lower one, so the decision on these scores is exactly the best one
    and a margin is left on both sides. No positives: DEFAULT_THRESHOLD."""
    scores, targets = scores.double().flatten(), targets.double().flatten()
    positives = float(targets.sum())
    if positives == 0:
        return DEFAULT_THRESHOLD
    order = torch.argsort(scores, descending=True, stable=True)
    s, tp = scores[order], torch.cumsum(targets[order], 0)
    last_of_tie = torch.ones_like(s, dtype=torch.bool)
    last_of_tie[:-1] = s[:-1] != s[1:]  # a threshold keeps every score equal to it
    f1 = torch.where(last_of_tie, 2 * tp / (torch.arange(1, len(s) + 1, dtype=s.dtype) + positives), -1.0)
    k = int(torch.argmax(f1))
    t = float(s[k]) if k + 1 == len(s) else float((s[k] + s[k + 1]) / 2)
    return min(max(t, 1e-6), 1 - 1e-6)


def choose_thresholds(probs: torch.Tensor, targets: torch.Tensor, mode) -> list[float]:
    """Per-class thresholds (one per column) for `mode` per_class | global | a fixed number."""
    c = probs.shape[1]
    if not isinstance(mode, str):
        return [float(mode)] * c
    if mode == "global":
        return [best_threshold(probs, targets)] * c
    return [best_threshold(probs[:, k], targets[:, k]) for k in range(c)]


class Multilabel(Task):
    name = "multilabel"
    model_kind = "classifier"
    primary_metric = "micro_map"
    multilabel = True
    calibrated = True
    recipe = "clip2sigma"

    def dataset(self, corpus, size, train, recipe="auto"):
        from spectralgpt.data.datasets import ClassificationDataset

        return ClassificationDataset(corpus, size=size, train=train, recipe=recipe)

    def num_classes(self, manifest):
        return int(manifest["num_labels"])

    def step(self, cfg, num_classes=None, corpus=None):
        return multilabel_step()

    def metric_options(self, extra):
        return {"inputs": "logits", "threshold": self.thresholds(extra)}

    def metrics(self, num_classes, extra=None, **options):
        from spectralgpt.evaluation.metrics import MultilabelMetrics

        return MultilabelMetrics(num_classes, **{**self.metric_options(extra or {}), **options})

    def calibrate(self, probs, targets, cfg):
        thresholds = choose_thresholds(probs, targets, cfg.thresholds)
        log.info("multilabel thresholds (%s, chosen on the validation split): %s", cfg.thresholds,
                 [round(t, 4) for t in thresholds])
        return {"thresholds": thresholds, "threshold_mode": cfg.thresholds if isinstance(cfg.thresholds, str)
                else "fixed"}

    @staticmethod
    def thresholds(extra: dict | None):
        """The saved thresholds of a model (a list), else DEFAULT_THRESHOLD."""
        return (extra or {}).get("thresholds") or DEFAULT_THRESHOLD

    def probabilities(self, logits):
        return torch.sigmoid(logits.float())

    def decide(self, probs, extra=None, dim=1):
        """Multi-hot (same shape as `probs`): probability >= the class' threshold."""
        t = torch.as_tensor(self.thresholds(extra), dtype=probs.dtype, device=probs.device)
        if t.ndim:
            t = t.reshape([-1 if d == dim % probs.ndim else 1 for d in range(probs.ndim)])
        return probs >= t

    def decision_map(self, probs, extra=None):
        """One 0/1 band per class (present where its probability reaches the class' saved threshold)."""
        return self.decide(probs, extra, dim=0).to(torch.uint8)

    def map_bands(self, names):
        return list(names)

    def labels(self, decisions, names):
        return [";".join(n for n, on in zip(names, row) if on) for row in decisions]

    @property
    def outputs(self):
        return "probabilities (B, K); `predicted`: the classes whose probability reaches its saved threshold"


TASK = Multilabel()
