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


def evaluate(params: Params, task: str) -> dict:
    """-> the metrics (with `data_version`) and, under "lineage", what the model was trained and scored on."""
    ft = params.finetune_for(task)
    ev = params.evaluate
    metrics = evaluate_model(ft.out, Path(ft.shards) / ft.corpus, ev.split, ev.batch_size, Path(ev.out) / task,
                             ev.legacy.get(task), device=ev.device)
    trained = (read_config(ft.out).get("extra") or {}).get("lineage") or {}
    metrics["lineage"] = {**trained, "eval_digest": metrics["data_version"], "eval_split": ev.split,
                          "model_digest": model_digest(ft.out),
                          "params_digest": settings_digest(ft, {"evaluate": ev})}
    return metrics
