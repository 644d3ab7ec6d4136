"""Evaluation: streaming task metrics (torchmetrics) and reports (metrics.json, per_class.csv, figures)."""

from spectralgpt.evaluation.metrics import (
    PRIMARY_METRICS,
    TASKS,
    ChangeMetrics,
    ClassificationMetrics,
    MultilabelMetrics,
    SegmentationMetrics,
    TaskMetrics,
    task_metrics,
    to_jsonable,
)
from spectralgpt.evaluation.report import plot_confusion_matrix, plot_multilabel_confusion, plot_per_class, save_report

__all__ = [
    "PRIMARY_METRICS",
    "TASKS",
    "ChangeMetrics",
    "ClassificationMetrics",
    "MultilabelMetrics",
    "SegmentationMetrics",
    "TaskMetrics",
    "plot_confusion_matrix",
    "plot_multilabel_confusion",
    "plot_per_class",
    "save_report",
    "task_metrics",
    "to_jsonable",
]
