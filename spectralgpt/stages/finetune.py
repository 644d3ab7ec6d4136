"""Fine-tuning stage: one downstream task (scene classification, multi-label classification, segmentation or
change detection) on the pretrained encoder, by full fine-tuning, linear probing or from scratch.

The run folder ``runs/finetune/<task>/`` is keyed by content: the training split's content digest, the digest
of the pretrained weights and the settings. A new encoder or new training data never resumes an old run; the
model is seeded before its head is drawn, so the same inputs give bit-identical weights.

Validation: the task's metrics on `val_split` every epoch (or N steps, `validate`), the best weights by the
task's primary metric kept (or the last), optional early stopping; a task without a stored validation split
(SegMunich, OSCD: `val_split: train`) holds out `val_holdout` of its training scenes, chosen by a hash of the
scene ids, and trains on the rest. The validation state is part of every checkpoint, so a killed run resumes
exactly. Decision settings (multi-label thresholds) are then chosen on the same validation data and saved with
the model.

Input bands: a task reads its corpus' bands (or `bands`, a subset by name); when they are not the model's bands
in the model's order, a `spectralgpt.bands.BandMapping` (`fill`, `wavelength_tolerance_nm`; a ``mean`` fill
measured on the training split) maps the normalised images onto the model's bands. It is recorded in the saved
model's ``normalization.band_mapping``, so validation, evaluation, `Predictor`, ``spectralgpt predict`` and the
pyfunc apply the same mapping.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from spectralgpt.bands import BandMapping
from spectralgpt.config import FinetuneConfig
from spectralgpt.data.datasets import Rows
from spectralgpt.evaluation.evaluate import predictions, validate
from spectralgpt.io.atomic import atomic_write_text
from spectralgpt.io.shards import ShardCorpus
from spectralgpt.models import create_model, load_pretrained, model_config, model_digest, save_model
from spectralgpt.stages.runs import open_run, settings_digest
from spectralgpt.tasks import get_task
from spectralgpt.training.distributed import is_main, rank_world
from spectralgpt.training.engine import fit
from spectralgpt.training.history import History, write_csv
from spectralgpt.training.validation import Validation

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


def holdout_rows(corpus: ShardCorpus, fraction: float) -> tuple[list[int], list[int]]:
    """(training rows, held-out rows): the scenes (index column `sample`, else the item) whose SHA-256 of their
    id falls below `fraction` are held out, with all their tiles; at least one scene on each side."""
    index = corpus.index
    ids = (index["sample"] if "sample" in index.columns else index["id"]).astype(str).tolist()
    key = {s: int(hashlib.sha256(s.encode()).hexdigest()[:12], 16) / 16 ** 12 for s in set(ids)}
    if len(key) < 2:
        raise ValueError(f"corpus {corpus.path} has {len(key)} scene(s): too few to hold one out for validation")
    ranked = sorted(key, key=key.get)
    held = {s for s in ranked if key[s] < fraction} or {ranked[0]}
    if len(held) == len(ranked):
        held.discard(ranked[-1])
    val = [i for i, s in enumerate(ids) if s in held]
    return [i for i, s in enumerate(ids) if s not in held], val


def band_mapping(cfg: FinetuneConfig, corpus: ShardCorpus, model_bands) -> BandMapping | None:
    """How the task's input bands (`cfg.bands`, default: the corpus' bands) feed the model's bands; None when
    they already are the model's bands in its order."""
    inputs = tuple(cfg.bands) if cfg.bands is not None else corpus.bands
    missing = [b for b in inputs if b not in corpus.bands]
    if missing:
        raise ValueError(f"finetune.{cfg.task}.bands names {', '.join(missing)}, which corpus {cfg.corpus!r} does not "
                         f"store (it has {', '.join(corpus.bands)})")
    if inputs == tuple(model_bands):
        return None
    return BandMapping.build(inputs, model_bands, cfg.fill, tolerance_nm=cfg.wavelength_tolerance_nm)


def training_dataset(cfg: FinetuneConfig, task, corpus: ShardCorpus, size: int):
    """The task's training dataset, with the band mapping (its ``mean`` fill measured on this split) when the
    input bands are not the model's."""
    train = task.dataset(corpus, size, train=True)
    mapping = band_mapping(cfg, corpus, model_config(cfg.model, **cfg.model_overrides).bands)
    if mapping is None:
        return train
    recipe = train.recipe.to_dict() if train.recipe else None
    if recipe is None:
        raise ValueError(f"{cfg.task}: a band mapping needs a normalisation recipe")
    if "mean" in mapping.how and recipe.get("name") != "zscore":  # a z-score's dataset mean is 0
        probe = task.dataset(corpus, size, train=False, recipe={**recipe, "band_mapping": mapping.to_dict()})
        mapping = mapping.with_mean(probe.normalised_mean())
    log.info("%s: input bands -> model bands: %s", cfg.task, mapping.describe())
    return task.dataset(corpus, size, train=True, recipe={**recipe, "band_mapping": mapping.to_dict()})


def normalization_record(dataset, corpus: ShardCorpus) -> dict | None:
    """What the model records as its preprocessing: the dataset's recipe and band mapping, and the conversion of
    raw pixels its corpus' reader applied (``input``: HLS Burn Scars' float reflectance -> reflectance x 10000),
    which `Predictor` applies to raw inputs."""
    from spectralgpt.data.sources import DATASET_KINDS

    record = dataset.normalization_record()
    reader = DATASET_KINDS.get(str(corpus.manifest.get("dataset_kind")))
    raw = getattr(reader, "RAW_INPUT", None)
    if record is not None and raw is not None:
        record = {**record, "input": dict(raw)}
    return record


def splits_of(cfg: FinetuneConfig, task, size: int):
    """(training dataset, validation dataset or None): `val_split` stored on its own, or a hold-out of train."""
    corpus = open_corpus(cfg, cfg.train_split)
    train = training_dataset(cfg, task, corpus, size)
    if cfg.validation is None:
        return corpus, train, None
    recipe = train.normalization_record() or "auto"  # validation preprocesses as training does
    if cfg.val_split != "train":
        try:
            val = open_corpus(cfg, cfg.val_split)
        except ValueError:
            raise ValueError(f"corpus {cfg.corpus!r} stores no {cfg.val_split!r} split to validate on; set "
                             f"finetune.{cfg.task}.val_split: train to hold out part of the training split") from None
        return corpus, train, task.dataset(val, size, train=False, recipe=recipe)
    keep, held = holdout_rows(corpus, cfg.val_holdout)
    log.info("%s: validating on %d of %d training items (val_split: train, val_holdout %.2f)", cfg.task,
             len(held), len(corpus), cfg.val_holdout)
    return corpus, Rows(train, keep), Rows(task.dataset(corpus, size, train=False, recipe=recipe), held)


def run_inputs(cfg: FinetuneConfig, corpus: ShardCorpus) -> dict:
    """What a fine-tuning run is computed from: training and validation data (validation picks the kept
    weights), pretrained weights, settings and the number of processes."""
    stored_val = cfg.validation is not None and cfg.val_split != "train"
    return {"train_data": corpus.content_digest,
            "val_data": open_corpus(cfg, cfg.val_split).content_digest if stored_val else "train hold-out",
            "pretrained": model_digest(cfg.pretrained) if cfg.pretrained else "none",
            "settings": settings_digest(cfg), "world_size": rank_world()[1]}


def finetune(cfg: FinetuneConfig, work: str | Path = "runs/finetune", reports: str | Path = "reports",
             callbacks=()) -> FinetuneResult:
    arch = model_config(cfg.model, **cfg.model_overrides)  # the config validated it against the task
    task = get_task(cfg.task)
    size = cfg.img_size or arch.img_size
    corpus, dataset, val_data = splits_of(cfg, task, size)
    manifest = corpus.manifest
    num_classes = task.num_classes(manifest)
    inputs = run_inputs(cfg, corpus)
    run_dir = open_run(Path(work) / cfg.task, inputs)
    torch.manual_seed(cfg.train.seed)  # the head's initial weights are part of what a seed reproduces
    model = create_model(cfg.model, num_classes=num_classes, multilabel=task.multilabel, img_size=size,
                         **cfg.model_overrides)
    load_report = None
    if cfg.pretrained:
        load_report = load_pretrained(model, cfg.pretrained)
        log.info("%s: pretrained weights from %s: %s", cfg.task, cfg.pretrained, load_report)
    if cfg.mode == "linear_probe":
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith(HEAD_PREFIXES)
    history = History(run_dir / "history.jsonl", task=cfg.task)
    extra = {"ignore_index": cfg.ignore_index}
    validation = None
    if val_data is not None:
        v = cfg.validation
        batch = v.batch_size or cfg.train.batch_size
        validation = Validation(lambda m: validate(m, task, val_data, num_classes, extra, batch),
                                task.primary_metric, v.every_steps, v.every_epochs, v.select, v.patience, v.min_delta)
    result = fit(model, task.step(cfg, num_classes, corpus), dataset, cfg.train, run_dir, [history, *callbacks],
                 inputs=inputs, validation=validation)
    rows = history.rows()
    val = result.validation or {}
    metrics = {"train_loss": rows[-1]["loss"] if rows else None, "images_per_second": result.images_per_second,
               "steps": result.steps, **{k: val.get(k) for k in ("val_metric", "best_val", "best_step")}}
    if val:
        metrics.update(select=cfg.validation.select, stopped_early=val["stopped_early"])
    lineage = {"train_digest": inputs["train_data"], "val_digest": inputs["val_data"],
               "pretrained_digest": inputs["pretrained"], "settings_digest": inputs["settings"]}
    if is_main():
        model.eval()
        decisions = calibrate(model, task, val_data, cfg) if val_data is not None else {}
        save_model(model, cfg.out, normalization=normalization_record(dataset, corpus),
                   extra={"task": cfg.task, "class_names": manifest.get("class_names"), "mode": cfg.mode,
                          "pretrained": cfg.pretrained, **extra, "lineage": lineage,
                          "load_report": str(load_report) if load_report else None,
                          **{k: metrics[k] for k in ("val_metric", "best_val", "best_step")}, **decisions})
        out = Path(reports) / cfg.task
        write_csv(rows, out / "train_history.csv")
        write_csv(val.get("history") or [], out / "val_history.csv")
        atomic_write_text(out / "train_metrics.json", json.dumps(metrics, indent=2) + "\n")
    return FinetuneResult(Path(cfg.out), metrics, rows, lineage)


@torch.no_grad()
def calibrate(model, task, val_data, cfg: FinetuneConfig) -> dict:
    """The task's decision settings (multi-label thresholds) chosen on the validation predictions of the
    selected weights."""
    if not task.calibrated:
        return {}
    batch = (cfg.validation.batch_size if cfg.validation else None) or cfg.train.batch_size
    probs, targets = [], []
    for _, logits, target in predictions(model, task, val_data, batch):
        probs.append(task.probabilities(logits))
        targets.append(target)
    return task.calibrate(torch.cat(probs), torch.cat(targets), cfg)
