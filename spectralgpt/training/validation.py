"""Validation inside `fit()`: when it runs, which weights it keeps, when it ends a run.

`Validation` is what the caller asks for (an `evaluate(model) -> metrics` function, the monitored metric, the
schedule, best or last, patience); `ValidationState` is what a run has seen so far: the best value, its step, the
best weights, the validations since the last improvement, every validation's row. That state is recorded in
every checkpoint, so a killed validated run resumes with it and ends exactly as an uninterrupted one: the same
best step, bit-identical weights. A validation never perturbs training: every RNG is restored afterwards, the
model goes back to train mode, and gradients are off while it runs.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from spectralgpt.training import state as ckpt

log = logging.getLogger(__name__)


@dataclass
class Validation:
    """`evaluate(model)` -> flat metrics (numbers; None for undefined), with the model in eval mode; `metric` is
    the key monitored, higher is better."""

    evaluate: Callable[[nn.Module], dict]
    metric: str
    every_steps: int | None = None
    every_epochs: float | None = None
    select: str = "best"
    patience: int | None = None
    min_delta: float = 0.0

    def interval(self, batches_per_epoch: int, accum_iter: int) -> int:
        """Optimizer steps between validations (every_steps, else every_epochs epochs, default one epoch)."""
        if self.every_steps:
            return self.every_steps
        return max(1, round((self.every_epochs or 1.0) * batches_per_epoch / accum_iter))


@dataclass
class ValidationState:
    best: float | None = None
    best_step: int | None = None
    since_best: int = 0
    stopped: bool = False
    history: list[dict] = field(default_factory=list)
    best_weights: dict | None = None

    def state_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "since_best": self.since_best,
                "stopped": self.stopped, "history": self.history, "best_weights": self.best_weights}

    @classmethod
    def from_dict(cls, d: dict | None) -> "ValidationState":
        return cls(**d) if d else cls()

    def summary(self, metric: str) -> dict:
        return {"val_metric": metric, "best_val": self.best, "best_step": self.best_step,
                "stopped_early": self.stopped, "validations": len(self.history)}


def run_validation(spec: Validation, st: ValidationState, model: nn.Module, step: int, epoch: float,
                   keep_weights: bool, autocast=contextlib.nullcontext) -> dict:
    """Validate `model` at `step`, update `st` (best, patience, history) and return the row it logged."""
    rng = ckpt.rng_state()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast():
            metrics = spec.evaluate(model)
    finally:
        model.train(was_training)
        ckpt.set_rng_state(rng)
    value = metrics.get(spec.metric)
    if value is None or not math.isfinite(value):
        log.warning("validation at step %d: %s is undefined (%s)", step, spec.metric, value)
        value = None
    improved = value is not None and (st.best is None or value > st.best + spec.min_delta)
    if improved:
        st.best, st.best_step, st.since_best = value, step, 0
        if keep_weights:
            st.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    else:
        st.since_best += 1
    if spec.patience is not None and st.since_best >= spec.patience:
        st.stopped = True
        log.info("early stopping at step %d: %s has not improved on %.6g (step %s) for %d validations", step,
                 spec.metric, st.best if st.best is not None else float("nan"), st.best_step, st.since_best)
    row = {"step": step, "epoch": epoch, **{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
           "best": bool(improved)}
    st.history.append(row)
    return row
