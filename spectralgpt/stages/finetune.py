"""Fine-tuning stage: one downstream task (scene classification, multi-label classification, segmentation or
change detection) on the pretrained encoder, by full fine-tuning, linear probing or from scratch.

The run folder ``runs/finetune/<task>/`` is keyed by content: the training split's content digest, the digest
of the pretrained weights and the settings. A new encoder or new training data never resumes an old run; the
model is seeded before its head is drawn, so the same inputs give bit-identical weights.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spectralgpt.config import FinetuneConfig
from spectralgpt.io.atomic import atomic_write_text
from spectralgpt.io.shards import ShardCorpus
from spectralgpt.models import create_model, load_pretrained, model_config, model_digest, save_model
from spectralgpt.stages.runs import open_run, settings_digest
from spectralgpt.training.distributed import is_main
from spectralgpt.training.engine import fit
from spectralgpt.training.history import History, write_csv
from spectralgpt.training.tasks import (change_step, classification_step, multilabel_step,
                                        published_change_weights, segmentation_step, task_dataset)

log = logging.getLogger(__name__)
HEAD_PREFIXES = ("head.", "fc.", "pyramid.", "decode_head.")


@dataclass
class FinetuneResult:
    model_dir: Path
    metrics: dict
    history: list[dict]
    lineage: dict


def open_corpus(cfg: FinetuneConfig, split: str | None) -> ShardCorpus:
    corpus = ShardCorpus(Path(cfg.shards) / cfg.corpus, split=split)
    if len(corpus) == 0:
        raise ValueError(f"corpus {cfg.corpus!r} has no {split!r} samples")
    return corpus


def num_classes_of(task: str, manifest: dict) -> int:
    names = manifest.get("class_names") or []
    if task == "multilabel":
        return int(manifest["num_labels"])
    if task == "change":
        return 2
    if not names:
        raise ValueError(f"the {task} corpus records no class names")
    return len(names)


def change_fraction(corpus: ShardCorpus) -> float:
    changed = total = 0
    for i in range(len(corpus)):
        m = np.asarray(corpus[i]["label"])
        changed += int((m == 1).sum())
        total += int(((m == 0) | (m == 1)).sum())
    return changed / max(total, 1)


def build_step(cfg: FinetuneConfig, num_classes: int, corpus: ShardCorpus):
    if cfg.task == "classification":
        return classification_step(num_classes, cfg.label_smoothing, cfg.mixup, cfg.cutmix)
    if cfg.task == "multilabel":
        return multilabel_step()
    weights = cfg.class_weights
    if cfg.task == "change":
        if weights == "auto":
            weights = published_change_weights(change_fraction(corpus))
            log.info("change-detection class weights (published formula): %s", weights)
        return change_step(weights, cfg.ignore_index)
    return segmentation_step(cfg.ignore_index, None if weights == "auto" else weights)


def run_inputs(cfg: FinetuneConfig, corpus: ShardCorpus) -> dict:
    """What a fine-tuning run is computed from: training data, pretrained weights, settings."""
    return {"train_data": corpus.content_digest,
            "pretrained": model_digest(cfg.pretrained) if cfg.pretrained else "none",
            "settings": settings_digest(cfg)}


def finetune(cfg: FinetuneConfig, work: str | Path = "runs/finetune", reports: str | Path = "reports",
             callbacks=()) -> FinetuneResult:
    arch = model_config(cfg.model, **cfg.model_overrides)  # the config validated it against the task
    corpus = open_corpus(cfg, cfg.train_split)
    manifest = corpus.manifest
    num_classes = num_classes_of(cfg.task, manifest)
    size = cfg.img_size or arch.img_size
    inputs = run_inputs(cfg, corpus)
    run_dir = open_run(Path(work) / cfg.task, inputs)
    torch.manual_seed(cfg.train.seed)  # the head's initial weights are part of what a seed reproduces
    model = create_model(cfg.model, num_classes=num_classes, multilabel=cfg.task == "multilabel", img_size=size,
                         **cfg.model_overrides)
    load_report = None
    if cfg.pretrained:
        load_report = load_pretrained(model, cfg.pretrained)
        log.info("%s: pretrained weights from %s: %s", cfg.task, cfg.pretrained, load_report)
    if cfg.mode == "linear_probe":
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith(HEAD_PREFIXES)
    dataset = task_dataset(cfg.task, corpus, size, train=True)
    history = History(run_dir / "history.jsonl", task=cfg.task)
    result = fit(model, build_step(cfg, num_classes, corpus), dataset, cfg.train, run_dir, [history, *callbacks],
                 inputs=inputs)
    rows = history.rows()
    metrics = {"train_loss": rows[-1]["loss"] if rows else None, "images_per_second": result.images_per_second,
               "steps": result.steps}
    lineage = {"train_digest": inputs["train_data"], "pretrained_digest": inputs["pretrained"],
               "settings_digest": inputs["settings"]}
    if is_main():
        model.eval()
        save_model(model, cfg.out, normalization=dataset.recipe.to_dict() if dataset.recipe else None,
                   extra={"task": cfg.task, "class_names": manifest.get("class_names"), "mode": cfg.mode,
                          "pretrained": cfg.pretrained, "ignore_index": cfg.ignore_index, "lineage": lineage,
                          "load_report": str(load_report) if load_report else None})
        out = Path(reports) / cfg.task
        write_csv(rows, out / "train_history.csv")
        atomic_write_text(out / "train_metrics.json", json.dumps(metrics, indent=2) + "\n")
    return FinetuneResult(Path(cfg.out), metrics, rows, lineage)
