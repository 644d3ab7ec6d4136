"""Evaluate stage: a task's fine-tuned model on its held-out split, the report under ``reports/<task>/`` and the
lineage a registered model version carries.

The evaluation's data version is the content digest of the evaluated split, so promotion compares two models
only when they were scored on byte-for-byte the same test data.
"""

from __future__ import annotations

from pathlib import Path

from spectralgpt.config import Params
from spectralgpt.evaluation.evaluate import evaluate as evaluate_model
from spectralgpt.models.checkpoint import read_config
from spectralgpt.models.digest import model_digest
from spectralgpt.stages.runs import settings_digest


def score(params: Params, task: str, model_dir, out_dir=None) -> dict:
    """The metrics of the model in `model_dir` on the task's evaluation split (as `evaluate` scores the fine-tuned
    one), with `data_version`; the report goes to `out_dir` when given. Retrain scores a champion again with it
    when the test set changed."""
    ft = params.finetune_for(task)
    ev = params.evaluate
    return evaluate_model(model_dir, Path(ft.shards) / ft.corpus, ev.split, ev.batch_size, out_dir,
                          ev.legacy.get(task), device=ev.device)


def evaluate(params: Params, task: str) -> dict:
    """-> the metrics (with `data_version`) and, under "lineage", what the model was trained and scored on."""
    ft = params.finetune_for(task)
    ev = params.evaluate
    metrics = score(params, task, ft.out, Path(ev.out) / task)
    trained = (read_config(ft.out).get("extra") or {}).get("lineage") or {}
    metrics["lineage"] = {**trained, "eval_digest": metrics["data_version"], "eval_split": ev.split,
                          "model_digest": model_digest(ft.out),
                          "params_digest": settings_digest(ft, {"evaluate": ev})}
    return metrics
