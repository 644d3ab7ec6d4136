"""Streaming task metrics on torchmetrics, computed over the whole evaluation set.

One object per task, one interface::

    m = task_metrics("segmentation", num_classes=13)
    for logits, target in loader:
        m.update(logits, target)          # batch by batch; state is counts or stored scores
    m.compute()                           # {"miou": 0.51, "per_class_iou": [...], ...}, JSON-ready
    m.confusion_matrix()                  # np.ndarray, rows = truth, columns = prediction
    m.primary                             # "miou": the number the promotion policy compares

Every number is accumulated over all batches and computed once at the end (never a mean of per-batch
values), except where a named legacy option reproduces the original code. Under DDP the torchmetrics states
are summed across processes when `compute()` runs.

``compute()`` returns a flat dict with snake_case keys: scalars as Python floats (counts as ints), per-class
values as lists indexed by class id, NaN and infinities rendered as ``None``.

Tasks (``TASKS``) and their primary metric (``PRIMARY_METRICS``):

==============  ================  =========================================================================
task            primary           inputs
==============  ================  =========================================================================
classification  overall_accuracy  logits or probabilities (B, C); integer targets (B,)
multilabel      micro_map         logits or probabilities (B, C); multi-hot targets (B, C)
segmentation    miou              logits (B, C, H, W) or predicted labels (B, H, W); targets (B, H, W)
change          f1                logits/log-probs (B, 2, H, W), change probabilities or logits (B, H, W)
                                  or predicted labels (B, H, W); targets (B, H, W) with 1 = change
==============  ================  =========================================================================

Legacy switches (reference section 9) reproduce the original's numbers; the defaults are the fixes:

* ``multilabel``: ``map_per_batch=True`` (bug 11) reports as ``micro_map`` the micro-averaged AP computed
  on each batch and averaged over batches weighted by batch size, as the original BigEarthNet evaluation
  does; the dataset-level value is then reported as ``micro_map_dataset``. The result depends on the batch
  size and order, and a batch without any positive label gives an undefined AP (NaN), which propagates.
* ``segmentation``: ``miou_plain_mean=True`` (bug 13) reports as ``miou`` the plain mean of all per-class
  IoUs, so a class absent from both prediction and truth (IoU NaN) makes it NaN (``None``), as the original.
* ``change``: the original's ``oscd_legacy_patch_eval`` (bug 12: per-class accuracy from batch element 0,
  ``drop_last``, overlapping 128-pixel patches at stride 63 counted repeatedly) is about how test patches
  are tiled, not about the metric; it belongs to the evaluation data pipeline, not here. Feeding this object
  the overlapping patches reproduces the original's pixel counting.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryCohenKappa,
    BinaryConfusionMatrix,
    BinaryF1Score,
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
    MulticlassAccuracy,
    MulticlassCohenKappa,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
    MulticlassRecall,
    MultilabelAveragePrecision,
    MultilabelConfusionMatrix,
    MultilabelF1Score,
    MultilabelStatScores,
)
from torchmetrics.functional.classification import multilabel_average_precision

log = logging.getLogger(__name__)

__all__ = [
    "PRIMARY_METRICS",
    "TASKS",
    "ChangeMetrics",
    "ClassificationMetrics",
    "MultilabelMetrics",
    "SegmentationMetrics",
    "TaskMetrics",
    "task_metrics",
    "to_jsonable",
]

PRIMARY_METRICS: dict[str, str] = {
    "classification": "overall_accuracy",
    "multilabel": "micro_map",
    "segmentation": "miou",
    "change": "f1",
}
TASKS: tuple[str, ...] = tuple(PRIMARY_METRICS)

Inputs = Literal["auto", "logits", "probs"]
_INTERNAL_IGNORE = -1  # every accepted ignore value is remapped to this one before torchmetrics sees it


def to_jsonable(value: Any) -> Any:
    """Tensors/arrays/numbers -> Python floats, ints or (nested) lists; NaN and +-inf -> None."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.item() if value.ndim == 0 else value.tolist()
    elif isinstance(value, np.ndarray):
        value = value.item() if value.ndim == 0 else value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _nanmean(values: torch.Tensor) -> float:
    """Mean over the non-NaN entries; NaN when there are none (no numpy 'mean of empty slice' warning)."""
    values = values.double()
    keep = ~torch.isnan(values)
    return float(values[keep].mean()) if bool(keep.any()) else float("nan")


def _safe_ratio(num: torch.Tensor, den: torch.Tensor, undefined: float) -> torch.Tensor:
    num, den = num.double(), den.double()
    out = num / den.clamp_min(1)
    return torch.where(den > 0, out, torch.full_like(out, undefined))


def _check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; expected one of {list(allowed)}")


def _ignore_values(ignore_index: int | Sequence[int] | None) -> tuple[int, ...]:
    if ignore_index is None:
        return ()
    values = (ignore_index,) if isinstance(ignore_index, int) else tuple(ignore_index)
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"ignore_index={ignore_index!r} must be an int or a sequence of ints")
    return values


class TaskMetrics:
    """Common interface: `update(preds, target)`, `compute()`, `confusion_matrix()`, `reset()`, `primary`.

    Subclasses keep their torchmetrics state in `self._metrics` (a `MetricCollection`); `to(device)` moves
    it (update inputs are moved to that device).
    """

    task: str = ""
    fixed_classes: int | None = None  # the class count when it does not depend on the data

    def __init__(self) -> None:
        self._metrics: MetricCollection
        self._updates = 0

    @property
    def primary(self) -> str:
        """Name of the task's primary metric (a key of `compute()`)."""
        return PRIMARY_METRICS[self.task]

    @property
    def device(self) -> torch.device:
        return next(iter(self._metrics.values())).device

    def to(self, device: str | torch.device) -> TaskMetrics:
        self._metrics = self._metrics.to(device)
        return self

    def reset(self) -> None:
        self._metrics.reset()
        self._updates = 0
        self.__dict__.pop("_auto_mode", None)

    @torch.no_grad()
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        preds = torch.as_tensor(preds).detach().to(self.device)
        target = torch.as_tensor(target).detach().to(self.device)
        preds, target = self._prepare(preds, target)
        self._update(preds, target)
        self._updates += 1

    def _update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self._metrics.update(preds, target)

    def compute(self) -> dict[str, Any]:
        if self._updates == 0:
            raise RuntimeError(f"{type(self).__name__}.compute() called before any update()")
        with torch.no_grad():
            values = self._compute()
        return {k: to_jsonable(v) for k, v in values.items()}

    def confusion_matrix(self) -> np.ndarray:
        """Counts, rows = ground truth, columns = prediction (int64)."""
        return self._metrics["confusion_matrix"].compute().cpu().numpy().astype(np.int64)

    # subclass hooks
    def _prepare(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _check_scores(self, preds: torch.Tensor, task: str) -> None:
        """Per-image scores: float logits or probabilities of shape (B, num_classes)."""
        if preds.ndim != 2 or preds.shape[1] != self.num_classes or not preds.is_floating_point():
            raise ValueError(
                f"{task} expects float logits or probabilities of shape (B, {self.num_classes}), "
                f"got {tuple(preds.shape)} {preds.dtype}"
            )

    def _compute(self) -> dict[str, Any]:
        raise NotImplementedError

    def _to_probs(self, preds: torch.Tensor, inputs: str, fn) -> torch.Tensor:
        """Scores -> probabilities: `fn` (sigmoid) for logits; 'auto' decides per batch, as torchmetrics does:
        any value outside [0, 1] means logits. Pass `inputs=` explicitly when a batch of logits may happen to
        fall inside [0, 1]."""
        preds = preds.float()
        if inputs == "auto":
            is_logits = bool(((preds < 0) | (preds > 1)).any())
            mode = "logits" if is_logits else "probs"
            if getattr(self, "_auto_mode", mode) != mode:
                log.warning(
                    "%s: inputs='auto' saw both logits and probabilities across batches; pass inputs='logits' "
                    "or inputs='probs' explicitly",
                    type(self).__name__,
                )
            self._auto_mode = mode
            inputs = mode
        return fn(preds) if inputs == "logits" else preds


def _collection(metrics: dict[str, Metric], groups: list[list[str]]) -> MetricCollection:
    """A MetricCollection whose shared states are declared, never inferred: torchmetrics' automatic grouping
    compares states after the first batch and can merge metrics that only coincide there (top-1 and top-5
    accuracy on a batch of one), silently reporting one metric's value for the other."""
    return MetricCollection(metrics, compute_groups=groups)


def _remap_ignore(target: torch.Tensor, ignore: tuple[int, ...]) -> torch.Tensor:
    target = target.long()
    if ignore:
        mask = torch.zeros_like(target, dtype=torch.bool)
        for v in ignore:
            mask |= target == v
        target = target.masked_fill(mask, _INTERNAL_IGNORE)
    return target


class ClassificationMetrics(TaskMetrics):
    """Single-label scene classification (EuroSAT, fMoW).

    Keys: ``overall_accuracy`` (micro, top-1), ``per_class_accuracy`` (recall of each class; None for a class
    absent from the targets), ``mean_class_accuracy`` (mean of the defined per-class accuracies, as
    scikit-learn's balanced accuracy), ``macro_f1`` (over classes present in prediction or truth, as
    scikit-learn's default labels), ``kappa`` (Cohen), ``top{k}_accuracy`` when ``num_classes > top_k``
    (default k = 5; with C == k it would trivially be 1), ``per_class_support``, ``num_samples``.
    """

    task = "classification"

    def __init__(self, num_classes: int, *, top_k: int = 5, validate_args: bool = True) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes} must be >= 2 for classification")
        self.num_classes = num_classes
        self.top_k = top_k if num_classes > top_k else None
        kw = dict(num_classes=num_classes, validate_args=validate_args)
        metrics: dict[str, Metric] = {
            "overall_accuracy": MulticlassAccuracy(average="micro", **kw),
            "recall": MulticlassRecall(average="none", **kw),
            "macro_f1": MulticlassF1Score(average="macro", **kw),
            "kappa": MulticlassCohenKappa(**kw),
            "confusion_matrix": MulticlassConfusionMatrix(**kw),
        }
        if self.top_k:
            metrics[f"top{self.top_k}_accuracy"] = MulticlassAccuracy(average="micro", top_k=self.top_k, **kw)
        self._metrics = _collection(metrics, [["kappa", "confusion_matrix"]])

    def _prepare(self, preds, target):
        self._check_scores(preds, "classification")
        if target.ndim != 1 or target.shape[0] != preds.shape[0]:
            raise ValueError(f"classification expects integer targets of shape (B,), got {tuple(target.shape)}")
        return preds.float(), target.long()

    def _compute(self):
        out = self._metrics.compute()
        support = self._metrics["confusion_matrix"].compute().sum(dim=1)
        per_class = torch.where(support > 0, out["recall"].double(), torch.nan)
        values = {
            "overall_accuracy": out["overall_accuracy"],
            "mean_class_accuracy": _nanmean(per_class),
            "macro_f1": out["macro_f1"],
            "kappa": out["kappa"],
        }
        if self.top_k:
            values[f"top{self.top_k}_accuracy"] = out[f"top{self.top_k}_accuracy"]
        values["num_samples"] = int(support.sum())
        values["per_class_accuracy"] = per_class
        values["per_class_support"] = support
        return values


class MultilabelMetrics(TaskMetrics):
    """Multi-label scene classification (BigEarthNet, 19 classes).

    Keys: ``micro_map`` and ``macro_map`` (average precision over the whole set; AP is computed exactly from
    stored scores unless ``ap_thresholds`` bins them to bound memory), ``per_class_ap`` (None for a class
    without any positive target: its AP is undefined; ``macro_map`` averages the defined ones), ``micro_f1``,
    ``macro_f1`` (a class is predicted when its probability is >= its threshold: ``threshold`` is one number or
    one per class, e.g. the thresholds chosen on the validation split and saved with the model),
    ``per_class_threshold``, ``per_class_support`` (positives per class),
    ``num_samples``. With ``map_per_batch=True`` see the module docstring (legacy, bug 11).
    """

    task = "multilabel"

    def __init__(
        self,
        num_classes: int,
        *,
        threshold: float | Sequence[float] = 0.5,
        inputs: Inputs = "auto",
        map_per_batch: bool = False,
        ap_thresholds: int | None = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        _check_choice("inputs", inputs, ("auto", "logits", "probs"))
        thresholds = torch.as_tensor(threshold, dtype=torch.float32).flatten()
        if thresholds.numel() not in (1, num_classes) or not bool(((thresholds > 0) & (thresholds < 1)).all()):
            raise ValueError(f"threshold={threshold} must be one number or {num_classes}, strictly between 0 and 1")
        self.num_classes = num_classes
        self.threshold = threshold
        self.thresholds = thresholds.expand(num_classes).clone()
        self.inputs = inputs
        self.map_per_batch = map_per_batch
        kw = dict(num_labels=num_classes, validate_args=validate_args)
        scores: dict[str, Metric] = {
            "micro_map": MultilabelAveragePrecision(average="micro", thresholds=ap_thresholds, **kw),
            "per_class_ap": MultilabelAveragePrecision(average="none", thresholds=ap_thresholds, **kw),
        }
        if map_per_batch:
            scores["micro_map_per_batch"] = _BatchWeightedMicroAP(num_classes)
        self._metrics = _collection(scores, [["micro_map", "per_class_ap"]])
        # the thresholded metrics see the decisions (0/1), so that per-class thresholds apply
        self._decisions = _collection({
            "micro_f1": MultilabelF1Score(average="micro", **kw),
            "macro_f1": MultilabelF1Score(average="macro", **kw),
            "stat_scores": MultilabelStatScores(average="none", **kw),
            "confusion_matrix": MultilabelConfusionMatrix(**kw),
        }, [["stat_scores"], ["micro_f1"], ["macro_f1"], ["confusion_matrix"]])

    def to(self, device):
        super().to(device)
        self._decisions = self._decisions.to(device)
        return self

    def reset(self) -> None:
        super().reset()
        self._decisions.reset()

    def _update(self, preds, target):
        self._metrics.update(preds, target)
        self._decisions.update((preds >= self.thresholds.to(preds.device)).long(), target)

    def _prepare(self, preds, target):
        self._check_scores(preds, "multilabel")
        if target.shape != preds.shape:
            raise ValueError(
                f"multilabel expects multi-hot targets of shape {tuple(preds.shape)}, got {tuple(target.shape)}"
            )
        return self._to_probs(preds, self.inputs, torch.sigmoid), target.long()

    def confusion_matrix(self) -> np.ndarray:
        """Per-class 2x2 matrices (C, 2, 2): [[tn, fp], [fn, tp]] at the thresholds."""
        return self._decisions["confusion_matrix"].compute().cpu().numpy().astype(np.int64)

    def _compute(self):
        with warnings.catch_warnings():
            # a class without positives: handled below (its AP is reported as undefined)
            warnings.filterwarnings("ignore", message="No positive samples found in target")
            out = {**self._metrics.compute(), **self._decisions.compute()}
        stats = out["stat_scores"]  # (C, 5): tp, fp, tn, fn, support
        support = stats[:, 4]
        per_class_ap = torch.where(support > 0, out["per_class_ap"].double(), torch.nan)
        values: dict[str, Any] = {}
        if self.map_per_batch:
            values["micro_map"] = out["micro_map_per_batch"]
            values["micro_map_dataset"] = out["micro_map"]
        else:
            values["micro_map"] = out["micro_map"]
        values.update(
            macro_map=_nanmean(per_class_ap),
            micro_f1=out["micro_f1"],
            macro_f1=out["macro_f1"],
            num_samples=int(stats[0, :4].sum()),
            per_class_ap=per_class_ap,
            per_class_threshold=self.thresholds.double(),
            per_class_support=support,
        )
        return values


class _BatchWeightedMicroAP(Metric):
    """Legacy (bug 11): micro AP of each batch, averaged over batches weighted by batch size."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_labels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_labels = num_labels
        self.add_state("weighted_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        ap = multilabel_average_precision(preds, target, num_labels=self.num_labels, average="micro")
        self.weighted_sum += ap.double() * preds.shape[0]
        self.count += preds.shape[0]

    def compute(self) -> torch.Tensor:
        return self.weighted_sum / self.count


class SegmentationMetrics(TaskMetrics):
    """Semantic segmentation (SegMunich, Sen1Floods11), from one pixel confusion matrix over the whole set.

    Pixels whose target is in ``ignore_index`` (default 255; an int or several, e.g. ``(255, -1)`` or ``-1``
    for Sen1Floods11 masks) are not counted. Keys: ``overall_accuracy``, ``per_class_iou`` and
    ``per_class_f1`` (None for a class absent from both prediction and truth), ``miou`` and ``mean_f1`` (mean
    over the defined classes), ``miou_no_background`` (the same without ``background_class``; omitted when it
    is None), ``per_class_support`` (truth pixels per class), ``num_pixels``. ``miou_plain_mean=True``:
    legacy ``miou`` (module docstring, bug 13).
    """

    task = "segmentation"

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | Sequence[int] | None = 255,
        background_class: int | None = 0,
        miou_plain_mean: bool = False,
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes} must be >= 2 for segmentation")
        if background_class is not None and not 0 <= background_class < num_classes:
            raise ValueError(f"background_class={background_class} must be None or in [0, {num_classes})")
        self.num_classes = num_classes
        self.ignore = _ignore_values(ignore_index)
        for v in self.ignore:
            if 0 <= v < num_classes:
                raise ValueError(f"ignore_index value {v} is a valid class id (num_classes={num_classes})")
        self.background_class = background_class
        self.miou_plain_mean = miou_plain_mean
        kw = dict(num_classes=num_classes, ignore_index=_INTERNAL_IGNORE, validate_args=validate_args)
        self._metrics = _collection(
            {
                "overall_accuracy": MulticlassAccuracy(average="micro", **kw),
                "per_class_iou": MulticlassJaccardIndex(average="none", **kw),  # 0/0 masked to NaN below
                "per_class_f1": MulticlassF1Score(average="none", **kw),
                "confusion_matrix": MulticlassConfusionMatrix(**kw),
            },
            [["per_class_iou", "confusion_matrix"]],
        )

    def _prepare(self, preds, target):
        if target.ndim != 3:
            raise ValueError(f"segmentation expects targets of shape (B, H, W), got {tuple(target.shape)}")
        if preds.ndim == 4:
            if preds.shape[1] != self.num_classes:
                raise ValueError(f"segmentation logits have {preds.shape[1]} channels, expected {self.num_classes}")
            preds = preds.argmax(dim=1)
        elif preds.ndim != 3 or preds.is_floating_point():
            raise ValueError(
                f"segmentation expects logits (B, C, H, W) or integer labels (B, H, W), got {tuple(preds.shape)} "
                f"{preds.dtype}"
            )
        if preds.shape != target.shape:
            raise ValueError(f"prediction {tuple(preds.shape)} and target {tuple(target.shape)} shapes differ")
        return preds.long(), _remap_ignore(target, self.ignore)

    def _compute(self):
        out = self._metrics.compute()
        cm = self._metrics["confusion_matrix"].compute()
        support, predicted = cm.sum(dim=1), cm.sum(dim=0)
        present = (support + predicted) > 0
        iou = torch.where(present, out["per_class_iou"].double(), torch.nan)
        f1 = torch.where(present, out["per_class_f1"].double(), torch.nan)
        values: dict[str, Any] = {
            "overall_accuracy": out["overall_accuracy"],
            "miou": float(iou.mean()) if self.miou_plain_mean else _nanmean(iou),
        }
        if self.background_class is not None:
            keep = torch.ones(self.num_classes, dtype=torch.bool)
            keep[self.background_class] = False
            values["miou_no_background"] = _nanmean(iou[keep.to(iou.device)])
        values.update(
            mean_f1=_nanmean(f1),
            num_pixels=int(support.sum()),
            per_class_iou=iou,
            per_class_f1=f1,
            per_class_support=support,
        )
        return values


class ChangeMetrics(TaskMetrics):
    """Binary change detection (OSCD), change = positive class, pixels counted over the whole set.

    Keys: ``precision``, ``recall``, ``f1``, ``iou`` of the change class, ``overall_accuracy``, ``kappa``
    (Cohen), ``change_support`` (true change pixels), ``num_pixels``, and ``per_class_precision``,
    ``per_class_recall``, ``per_class_support`` as [no_change, change] lists (the original also reports the
    no-change precision and recall).

    Undefined ratios (0/0: no change in the truth and none predicted, or nothing predicted as change) are
    reported as ``zero_division`` (default 0.0), the convention of scikit-learn, torchmetrics and the usual
    change-detection code (which divides with an epsilon), so the primary metric stays a number a promotion
    policy can compare; ``overall_accuracy`` is then 1.0. Kappa is undefined when both maps hold a single
    class (expected agreement 1); it then takes the same ``zero_division`` value. Pass
    ``zero_division=float("nan")`` to get None instead (e.g. to skip such images when averaging per image).

    Predictions: (B, 2, H, W) logits or log-probabilities (argmax; the original outputs LogSoftmax),
    (B, 1, H, W) / (B, H, W) change probabilities (or logits, see ``inputs``) thresholded at ``threshold``,
    or integer/bool (B, H, W) maps. Targets: 0/1 with ``ignore_index`` (default 255; -1 or several accepted).
    The legacy ``oscd_legacy_patch_eval`` is about patch tiling, not this metric (module docstring).
    """

    task = "change"
    fixed_classes = 2

    def __init__(
        self,
        num_classes: int | None = 2,
        *,
        ignore_index: int | Sequence[int] | None = 255,
        threshold: float = 0.5,
        inputs: Inputs = "auto",
        zero_division: float = 0.0,
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        if num_classes not in (None, 2):
            raise ValueError(f"num_classes={num_classes} for change detection must be 2 (no change, change)")
        _check_choice("inputs", inputs, ("auto", "logits", "probs"))
        if not (math.isnan(zero_division) or zero_division in (0.0, 1.0)):
            raise ValueError(f"zero_division={zero_division} must be 0.0, 1.0 or nan")
        self.num_classes = 2
        self.ignore = _ignore_values(ignore_index)
        for v in self.ignore:
            if v in (0, 1):
                raise ValueError(f"ignore_index value {v} is a valid class id for change detection")
        self.threshold = threshold
        self.inputs = inputs
        self.zero_division = float(zero_division)
        kw = dict(ignore_index=_INTERNAL_IGNORE, validate_args=validate_args)
        self._metrics = _collection(
            {
                "precision": BinaryPrecision(**kw),
                "recall": BinaryRecall(**kw),
                "f1": BinaryF1Score(**kw),
                "iou": BinaryJaccardIndex(**kw),
                "overall_accuracy": BinaryAccuracy(**kw),
                "kappa": BinaryCohenKappa(**kw),
                "confusion_matrix": BinaryConfusionMatrix(**kw),
            },
            [["precision", "recall", "f1", "overall_accuracy"], ["iou", "kappa", "confusion_matrix"]],
        )

    def _prepare(self, preds, target):
        if preds.ndim == 4 and preds.shape[1] == 2:
            preds = preds.argmax(dim=1)
        else:
            if preds.ndim == 4 and preds.shape[1] == 1:
                preds = preds[:, 0]
            if preds.ndim != 3:
                raise ValueError(
                    "change expects (B, 2, H, W) logits, (B, 1, H, W) or (B, H, W) change probabilities, or "
                    f"(B, H, W) labels, got {tuple(preds.shape)}"
                )
            if preds.is_floating_point():
                preds = (self._to_probs(preds, self.inputs, torch.sigmoid) > self.threshold).long()
        if preds.shape != target.shape:
            raise ValueError(f"prediction {tuple(preds.shape)} and target {tuple(target.shape)} shapes differ")
        return preds.long(), _remap_ignore(target, self.ignore)

    def _compute(self):
        out = self._metrics.compute()
        cm = self._metrics["confusion_matrix"].compute().double()  # [[tn, fp], [fn, tp]]
        (tn, fp), (fn, tp) = cm[0], cm[1]
        zd = self.zero_division
        n = tn + fp + fn + tp

        def defined(value: torch.Tensor, den: torch.Tensor) -> float:
            return float(value) if float(den) > 0 else zd

        p_e = ((tn + fp) * (tn + fn) + (fn + tp) * (fp + tp)) / n.clamp_min(1) ** 2
        return {
            "precision": defined(out["precision"], tp + fp),
            "recall": defined(out["recall"], tp + fn),
            "f1": defined(out["f1"], 2 * tp + fp + fn),
            "iou": defined(out["iou"], tp + fp + fn),
            "overall_accuracy": out["overall_accuracy"] if n > 0 else float("nan"),
            "kappa": float(out["kappa"]) if n > 0 and float(p_e) < 1.0 else (zd if n > 0 else float("nan")),
            "change_support": int(tp + fn),
            "num_pixels": int(n),
            # [no_change, change]; the change entries equal the scalars above
            "per_class_precision": _safe_ratio(torch.stack([tn, tp]), torch.stack([tn + fn, tp + fp]), zd),
            "per_class_recall": _safe_ratio(torch.stack([tn, tp]), torch.stack([tn + fp, tp + fn]), zd),
            "per_class_support": torch.stack([tn + fp, tp + fn]).long(),
        }


_CLASSES = {
    "classification": ClassificationMetrics,
    "multilabel": MultilabelMetrics,
    "segmentation": SegmentationMetrics,
    "change": ChangeMetrics,
}


def task_metrics(task: str, num_classes: int | None = None, **options: Any) -> TaskMetrics:
    """The streaming metric object for `task` (one of `TASKS`); `options` are the task class's keywords."""
    _check_choice("task", task, TASKS)
    if num_classes is None and _CLASSES[task].fixed_classes is None:
        raise ValueError(f"num_classes is required for task {task!r}")
    return _CLASSES[task](num_classes, **options)
