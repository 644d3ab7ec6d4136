"""The tasks, one module each: `TASKS` (name -> `Task`), `get_task(name)`, and `FINETUNE_TASKS`, the names of
the downstream tasks that are fine-tuned and evaluated (config, flows, the CLI and dvc.yaml's foreach lists all
come from it). Adding a task is one module here and one line below."""

from __future__ import annotations

from spectralgpt.tasks import change, classification, multilabel, pretrain, segmentation
from spectralgpt.tasks.base import StepFn, Task

TASKS: dict[str, Task] = {m.TASK.name: m.TASK for m in (pretrain, classification, multilabel, segmentation, change)}
#: the downstream tasks (everything with a prediction head), in pipeline order
FINETUNE_TASKS: tuple[str, ...] = tuple(name for name, t in TASKS.items() if t.predicts)


def get_task(name: str) -> Task:
    """The task called `name`; ValueError naming the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def task_of_model(cfg, extra: dict | None = None) -> Task:
    """The task of a saved model: its recorded `extra.task`, else the one its architecture implies."""
    name = (extra or {}).get("task")
    if name:
        return get_task(name)
    for t in TASKS.values():
        if t.model_kind == cfg.kind and t.multilabel == bool(getattr(cfg, "multilabel", False)):
            return t
    raise ValueError(f"no task trains a {cfg.kind!r} model")


__all__ = ["FINETUNE_TASKS", "TASKS", "StepFn", "Task", "get_task", "task_of_model"]
