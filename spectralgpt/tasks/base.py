"""What a task is, in one object (as TorchGeo's trainers are): the model kind it trains, its dataset, its loss
step, how a batch calls the model, its metrics and primary metric, the decision it turns probabilities into,
and what predict and the MLflow model output. Stages, evaluation, inference and serving call these methods
instead of branching on a task name, so a new task is one module in this package.

Modules here import the data and metric code inside the methods: `spectralgpt.config` reads the task list at
import time and must not pay for torchmetrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

StepFn = Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict]]


class Task:
    name: ClassVar[str]
    #: the model family it fine-tunes (a `ModelConfig.kind`)
    model_kind: ClassVar[str]
    #: the key of its metrics' `compute()` that promotion and model selection compare (higher is better)
    primary_metric: ClassVar[str | None] = None
    #: the batch entry the loss and the metrics compare predictions with
    target: ClassVar[str] = "label"
    #: per-pixel outputs: scored on whole scenes, predicted as maps, shaped (B, K, H, W)
    dense: ClassVar[bool] = False
    multilabel: ClassVar[bool] = False
    #: images per sample (change detection: two dates)
    dates: ClassVar[int] = 1
    #: class count when it does not depend on the data
    fixed_classes: ClassVar[int | None] = None
    #: class names when the data records none
    class_names: ClassVar[list[str] | None] = None
    #: whether `finetune.<task>.class_weights` applies
    class_weights: ClassVar[bool] = False
    #: default normalisation recipe and image fit of its corpus (reference 3.4)
    recipe: ClassVar[str] = "minmax"
    fit: ClassVar[str] = "crop"
    #: the split it validates on when params name none ("train": a hold-out of the training split)
    val_split: ClassVar[str] = "val"
    #: whether it chooses decision settings on the validation split (`calibrate`)
    calibrated: ClassVar[bool] = False
    #: the first band of a predicted map
    map_band: ClassVar[str] = "class"

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    # ---------------------------------------------------------------------------------------- training
    def dataset(self, corpus, size: int, train: bool, recipe="auto"):
        raise NotImplementedError

    def num_classes(self, manifest: dict) -> int:
        if self.fixed_classes is not None:
            return self.fixed_classes
        names = manifest.get("class_names") or []
        if not names:
            raise ValueError(f"the {self.name} corpus records no class names")
        return len(names)

    def step(self, cfg, num_classes: int | None = None, corpus=None) -> StepFn:
        """The training step `(model, batch) -> (loss, logs)` for settings `cfg`."""
        raise NotImplementedError

    def forward(self, model, batch: dict) -> torch.Tensor:
        """How a batch calls the model: logits."""
        return model(batch["image"])

    # -------------------------------------------------------------------------------------- evaluation
    @property
    def predicts(self) -> bool:
        """Whether its model has a prediction head (the pretraining MAE has none)."""
        return self.primary_metric is not None

    def metric_options(self, extra: dict) -> dict:
        """Keywords of its metrics object from a saved model's config extra."""
        return {}

    def metrics(self, num_classes: int, extra: dict | None = None, **options: Any):
        raise NotImplementedError(f"the {self.name} task has no metrics")

    def calibrate(self, probs: torch.Tensor, targets: torch.Tensor, cfg) -> dict:
        """Decision settings chosen on validation predictions, saved with the model (config extra)."""
        return {}

    # ---------------------------------------------------------------------------------------- outputs
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=1)

    def decide(self, probs: torch.Tensor, extra: dict | None = None, dim: int = 1) -> torch.Tensor:
        """Probabilities -> the decision a user acts on: the class index (class axis `dim` removed)."""
        return probs.argmax(dim=dim)

    def decision_map(self, probs: torch.Tensor, extra: dict | None = None) -> torch.Tensor:
        """(K, h, w) probabilities of a predicted map (on any device) -> its uint8 decision bands (D, h, w):
        here one band, the class index."""
        if probs.device.type == "cpu":  # numpy's argmax over the class axis is ~2x torch's on a CPU
            return torch.from_numpy(probs.numpy().argmax(axis=0).astype(np.uint8)[None])
        return probs.argmax(dim=0).to(torch.uint8)[None]

    def map_bands(self, names: list[str]) -> list[str]:
        """Descriptions of the decision bands `decision_map` returns."""
        return [self.map_band]

    def labels(self, decisions, names: list[str]) -> list[str]:
        """Decisions of a batch of images -> one label string per image (the pyfunc's `predicted` column)."""
        return [names[int(i)] for i in decisions]

    @property
    def outputs(self) -> str:
        return "probabilities (B, K, H, W)" if self.dense else "probabilities (B, K)"
