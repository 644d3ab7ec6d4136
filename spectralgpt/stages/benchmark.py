"""Benchmark stage: the field's frozen-encoder protocols (`spectralgpt.protocols`) over datasets, on one encoder,
and a table shaped like the paper's: one row per dataset and protocol, the columns OA / mAP / mIoU / F1,
written as ``<out>/<name>.md`` and ``<out>/<name>.json`` (dense protocols also leave the evaluation stage's
report, per-class values and figures, in ``<out>/<name>/<dataset>-upernet/``).

A dataset is a shard corpus (``shards``: what the preprocess stage wrote) or a raw dataset in its own layout
(``source``: any reader kind `load_dataset` knows), which is validated (bad samples quarantined, as ingest does)
and stored as shards under ``<work>/<name>/data/<dataset>/<split>/`` with the content digest of every sample, so
a rerun reuses every shard whose samples are byte-for-byte the same. Its task comes from its labels (a class,
a multi-hot vector, a mask, a second date), or is declared and then checked; each protocol runs on the datasets
whose task it applies to. Images are normalised as fine-tuning would (the task's recipe, statistics from the
training split) and must carry the encoder's bands, selected by name.

With a tracking run (``run``: a `spectralgpt.tracking.Run`) every score is logged as ``<dataset>.<protocol>.
<metric>``, every training curve as ``<dataset>.<protocol>.train_loss`` by epoch or step, and the two report
files as artifacts; the stage itself never imports MLflow.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from spectralgpt.bands import BandMapping
from spectralgpt.config import BenchmarkConfig, BenchmarkDataset
from spectralgpt.device import resolve_device
from spectralgpt.io.atomic import atomic_write_text
from spectralgpt.io.shards import ShardCorpus
from spectralgpt.protocols import get_protocol
from spectralgpt.stages.runs import open_run, settings_digest
from spectralgpt.tasks import TASKS, Task

log = logging.getLogger(__name__)

#: the table's columns: title -> metric keys, the first one a row has is shown (F1: the change class' F1,
#: multi-label micro F1, segmentation mean F1, classification macro F1)
COLUMNS: dict[str, tuple[str, ...]] = {
    "OA": ("overall_accuracy",),
    "mAP": ("micro_map",),
    "mIoU": ("miou",),
    "F1": ("f1", "micro_f1", "mean_f1", "macro_f1"),
}
CURVE_POINTS = 50  #: at most this many points of a training curve go to the tracking run


@dataclass
class Prepared:
    """A benchmark dataset ready for the protocols: its task and its training and test shard corpora."""

    name: str
    task: Task
    root: Path
    train: ShardCorpus
    test: ShardCorpus
    num_classes: int
    class_names: list[str] | None
    mapping: BandMapping | None = None  # the data's bands onto the encoder's, when they differ
    ignore_index: int | None = None  # the dataset's own ignored mask value (else upernet.ignore_index)


@dataclass
class Row:
    dataset: str
    protocol: str
    task: str
    metrics: dict  # scalar scores (JSON-ready)
    primary_metric: str
    train_items: int
    test_items: int
    train_digest: str
    test_digest: str
    settings: dict
    history: list[dict] = field(default_factory=list)  # training curve ({"epoch"|"step", "loss"})


@dataclass
class BenchmarkResult:
    rows: list[Row]
    markdown: Path
    json: Path
    encoder_digest: str


# ------------------------------------------------------------------------------------------------ data
def task_for_labels(label_kind: str, dates: int) -> Task:
    """The downstream task whose labels these are: 'class', 'multilabel' or 'mask', with 1 or 2 dates."""
    dense, multilabel = label_kind == "mask", label_kind == "multilabel"
    for task in TASKS.values():
        if task.predicts and task.dense == dense and task.multilabel == multilabel and task.dates == dates:
            return task
    raise ValueError(f"no task takes {label_kind!r} labels on {dates} date(s)")


def _checked_task(entry: BenchmarkDataset, found: Task) -> Task:
    declared = entry.task
    if declared is not None and declared != found.name:
        raise ValueError(f"dataset {entry.name!r} is declared a {declared} dataset but its labels are "
                         f"{found.name} labels")
    return found


def _probe_task(entry: BenchmarkDataset, ds) -> Task:
    """The task of a raw dataset's labels, from its first readable sample."""
    from spectralgpt.data.sample import BadSample

    last = None
    for i in range(min(len(ds), 64)):
        try:
            sample = ds[i]
        except (BadSample, OSError) as e:
            last = e
            continue
        ndim = getattr(sample.label, "ndim", 0)
        kind = "mask" if ndim == 2 else "multilabel" if ndim == 1 else "class"
        return _checked_task(entry, task_for_labels(kind, 2 if sample.image2 is not None else 1))
    raise ValueError(f"dataset {entry.name!r}: no readable sample among the first {min(len(ds), 64)} "
                     f"(last error: {last})")


def raw_corpus(cfg: BenchmarkConfig, entry: BenchmarkDataset, size: int) -> Path:
    """Store a raw dataset's two splits as shards under ``<work>/<name>/data/<dataset>/<split>/`` (its bands:
    ``source.bands``, else the reader's own; unusable samples quarantined, shards reused by content); returns that
    folder."""
    from spectralgpt.data.preprocess import preprocess
    from spectralgpt.data.sources import load_dataset
    from spectralgpt.stages.ingest import source_bands

    src = entry.source
    bands = source_bands(src)
    root = Path(cfg.work) / cfg.name / "data" / entry.name
    task = None
    for split in (entry.train_split, entry.test_split):
        ds = load_dataset(src.kind, src.root, split=split, bands=bands, **src.options)
        if len(ds) == 0:
            raise ValueError(f"dataset {entry.name!r}: no {split!r} samples under {src.root}")
        task = task or _probe_task(entry, ds)
        result = preprocess(ds, root / split, size=entry.size or size, shard_size=256, workers=cfg.workers,
                            bands=bands, fit=entry.fit or task.fit, recipe=entry.recipe or task.recipe,
                            name=entry.name, meta={"class_names": list(ds.class_names or []),
                                                   "dataset_kind": src.kind, "split": split})
        bad = len(result.quarantine) / max(len(ds), 1)
        if bad > cfg.max_bad_fraction:
            raise ValueError(f"dataset {entry.name!r}: {len(result.quarantine)} of {len(ds)} {split!r} samples are "
                             f"unusable ({bad:.1%} > max_bad_fraction {cfg.max_bad_fraction:.1%}); see "
                             f"{root / split / 'quarantine.json'}")
    return root


def prepare(cfg: BenchmarkConfig, entry: BenchmarkDataset, model_bands, size: int) -> Prepared:
    """Open (or, for a raw source, first write) the dataset's training and test corpora, find its task and, when
    its bands are not the encoder's `model_bands`, how they map onto them."""
    root = raw_corpus(cfg, entry, size) if entry.source is not None else Path(entry.shards)
    train, test = (ShardCorpus(root, split=s) for s in (entry.train_split, entry.test_split))
    for split, corpus in ((entry.train_split, train), (entry.test_split, test)):
        if len(corpus) == 0:
            raise ValueError(f"dataset {entry.name!r}: {root} has no {split!r} items")
    if tuple(test.bands) != tuple(train.bands):
        raise ValueError(f"dataset {entry.name!r}: its {entry.train_split} and {entry.test_split} splits store other "
                         f"bands ({', '.join(train.bands)} vs {', '.join(test.bands)})")
    manifest = train.manifest
    task = _checked_task(entry, task_for_labels(manifest.get("label_kind", "none"),
                                                2 if "image2" in train.arrays else 1))
    names = manifest.get("class_names") or task.class_names
    data = Prepared(entry.name, task, root, train, test, task.num_classes(manifest), list(names) if names else None,
                    ignore_index=entry.ignore_index)
    if tuple(train.bands) != tuple(model_bands):
        mapping = BandMapping.build(train.bands, model_bands, entry.fill, tolerance_nm=entry.wavelength_tolerance_nm)
        recipe = _recipe(data, size)
        if "mean" in mapping.how and recipe.get("name") != "zscore":  # a z-score's dataset mean is 0: else measure it
            probe = task.dataset(train, size, train=False, recipe={**recipe, "band_mapping": mapping.to_dict()})
            mapping = mapping.with_mean(probe.normalised_mean())
        data.mapping = mapping
        log.info("%s: data bands -> encoder bands: %s", entry.name, mapping.describe())
    return data


def _recipe(data: Prepared, size: int) -> dict:
    """The training split's normalisation recipe (what the task's dataset takes from the corpus)."""
    recipe = data.task.dataset(data.train, size, train=False).recipe
    if recipe is None:
        raise ValueError(f"dataset {data.name!r}: mapping its bands onto the encoder's needs a normalisation recipe")
    return recipe.to_dict()


def datasets(data: Prepared, size: int, augment: bool):
    """The training split as the task's dataset (augmented for training a decoder, else as evaluated), with the
    band mapping when there is one, and the recipe the test split takes: the same normalisation, statistics and
    mapping."""
    recipe = "auto" if data.mapping is None else {**_recipe(data, size), "band_mapping": data.mapping.to_dict()}
    train = data.task.dataset(data.train, size, train=augment, recipe=recipe)
    return train, train.normalization_record() or "auto"


# ------------------------------------------------------------------------------------------- protocols
def _scalars(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is None or isinstance(v, (bool, int, float, str))}


def _image_level(cfg: BenchmarkConfig, data: Prepared, encoder, protocols: list[str], device) -> list[Row]:
    """linear_probe and knn share one pass of the frozen encoder over each split."""
    from spectralgpt.protocols.features import pooled_features
    from spectralgpt.protocols.knn import knn_scores
    from spectralgpt.protocols.linear_probe import probe_logits, train_linear_probe

    task, size = data.task, encoder.cfg.img_size
    train_ds, recipe = datasets(data, size, augment=False)
    test_ds = task.dataset(data.test, size, train=False, recipe=recipe)  # normalised (and mapped) alike
    train = pooled_features(encoder.model, train_ds, cfg.batch_size, device, desc=f"{data.name} train features")
    test = pooled_features(encoder.model, test_ds, cfg.batch_size, device, desc=f"{data.name} test features")
    rows = []
    for name in protocols:
        history: list[dict] = []
        if name == "linear_probe":
            lp = cfg.linear_probe
            result = train_linear_probe(train.x, train.y, data.num_classes, task.multilabel, epochs=lp.epochs,
                                        batch_size=lp.batch_size, lr=lp.lr, momentum=lp.momentum,
                                        weight_decay=lp.weight_decay, seed=lp.seed, device=device)
            logits, history, settings = probe_logits(result, test.x), result.history, lp.model_dump()
        else:
            kn = cfg.knn
            probs = knn_scores(train.x, train.y, test.x, data.num_classes, k=kn.k, temperature=kn.temperature,
                               multilabel=task.multilabel, chunk=kn.chunk, device=device)
            eps = 1e-6  # probabilities as the logits the task's metrics take (sigmoid / softmax give them back)
            logits = torch.logit(probs, eps) if task.multilabel else probs.clamp_min(eps).log()
            settings = kn.model_dump()
        metrics = task.metrics(data.num_classes)
        metrics.update(logits, test.y)
        rows.append(Row(data.name, name, task.name, _scalars(metrics.compute()), task.primary_metric, len(train.x),
                        len(test.x), data.train.content_digest, data.test.content_digest, settings, history))
        log.info("%s / %s: %s = %.4f", data.name, name, task.primary_metric, rows[-1].metrics[task.primary_metric])
    return rows


def _upernet(cfg: BenchmarkConfig, data: Prepared, encoder, device) -> Row:
    from spectralgpt.evaluation.evaluate import evaluate
    from spectralgpt.protocols.dense import dense_config, train_dense

    up, task = cfg.upernet, data.task
    if data.ignore_index is not None:
        up = up.model_copy(update={"ignore_index": data.ignore_index})
    if isinstance(up.class_weights, list) and len(up.class_weights) != data.num_classes:
        raise ValueError(f"dataset {data.name!r} has {data.num_classes} classes but upernet.class_weights has "
                         f"{len(up.class_weights)} values")
    arch = dense_config(encoder.cfg, task.model_kind, data.num_classes, up.layers, up.channels, up.dropout,
                        up.freeze_encoder, encoder.cfg.img_size)
    train_cfg = up.train if up.train.device != "auto" else up.train.model_copy(update={"device": str(device)})
    dataset, recipe = datasets(data, arch.img_size, augment=True)
    inputs = {"train_data": data.train.content_digest, "encoder": encoder.digest,
              "settings": settings_digest(arch, up, task.name, recipe), "world_size": 1}
    run_dir = open_run(Path(cfg.work) / cfg.name / data.name / "upernet", inputs)
    trained = train_dense(arch, encoder.source, task, dataset, task.step(up, data.num_classes, data.train),
                          train_cfg, run_dir, inputs, up.freeze_encoder,
                          extra={"class_names": data.class_names, "ignore_index": up.ignore_index,
                                 "encoder_digest": encoder.digest})
    values = evaluate(trained.model_dir, data.root, data.test.split, up.eval_batch_size,
                      Path(cfg.out) / cfg.name / f"{data.name}-upernet", device=str(device))
    settings = {**up.model_dump(mode="json", exclude={"train"}), "feature_layers": list(arch.feature_layers),
                "trainable_parameters": trained.trainable, "frozen_parameters": trained.frozen,
                "steps": trained.history[-1]["step"] if trained.history else 0, "scored_on": values.get("scored_on")}
    history = [{"step": r["step"], "loss": r["loss"]} for r in trained.history]
    log.info("%s / upernet: %s = %.4f", data.name, task.primary_metric, values[task.primary_metric])
    return Row(data.name, "upernet", task.name, _scalars({k: v for k, v in values.items() if k != "data_version"}),
               task.primary_metric, len(dataset), int(values.get("num_items", len(data.test))),
               data.train.content_digest, values["data_version"], settings, history)


def run_dataset(cfg: BenchmarkConfig, entry: BenchmarkDataset, encoder, device=None, run=None) -> list[Row]:
    """Every listed protocol that applies to this dataset's task (none applying is an error), on `device`
    (default: benchmark.device); with a tracking `run`, the rows are logged to it."""
    device = resolve_device(cfg.device) if device is None else device
    data = prepare(cfg, entry, encoder.cfg.bands, encoder.cfg.img_size)
    chosen = [p for p in cfg.protocols if get_protocol(p).applies(data.task)]
    if not chosen:
        raise ValueError(f"dataset {entry.name!r} is a {data.task.name} dataset: none of the protocols "
                         f"{cfg.protocols} applies to it")
    rows = []
    image_level = [p for p in chosen if not get_protocol(p).dense]
    if image_level:
        rows += _image_level(cfg, data, encoder, image_level, device)
    if "upernet" in chosen:
        rows.append(_upernet(cfg, data, encoder, device))
    for r in rows:  # what fed the encoder: the data's own bands, or a mapping of them
        r.settings["band_mapping"] = data.mapping.describe() if data.mapping is not None else None
    if run is not None:
        log_rows(run, rows)
    return rows


# ---------------------------------------------------------------------------------------------- report
def column_values(row: Row) -> dict[str, float | None]:
    out = {}
    for title, keys in COLUMNS.items():
        out[title] = next((row.metrics[k] for k in keys if isinstance(row.metrics.get(k), (int, float))), None)
    return out


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * v:.2f}"


def protocol_label(row: Row) -> str:
    s = row.settings
    if row.protocol == "knn":
        return f"k-NN (k={s['k']}, T={s['temperature']:g})"
    if row.protocol == "upernet":
        frozen = "frozen" if s.get("freeze_encoder") else "fine-tuned"
        return f"UPerNet (layers {', '.join(map(str, s['feature_layers']))}; {frozen})"
    return f"{get_protocol(row.protocol).title} ({s['epochs']} epochs)"


def markdown_table(cfg: BenchmarkConfig, encoder, rows: list[Row]) -> str:
    cols = [c for c in COLUMNS if any(column_values(r)[c] is not None for r in rows)]
    lines = [f"# Benchmark `{cfg.name}`", "",
             f"Encoder `{encoder.source}` ({encoder.cfg.embed_dim}-wide, {encoder.cfg.depth} blocks, "
             f"{encoder.cfg.img_size} px, bands {' '.join(encoder.cfg.bands)}; weights `{encoder.digest[:12]}`). "
             "Scores in % on each dataset's test split; the task's primary metric in bold.", "",
             "| dataset | protocol | task | " + " | ".join(cols) + " | train | test |",
             "| --- | --- | --- | " + " | ".join("---:" for _ in cols) + " | ---: | ---: |"]
    for r in rows:
        values = column_values(r)
        primary = next((t for t, keys in COLUMNS.items() if r.primary_metric in keys), None)
        cells = [f"**{_fmt(values[c])}**" if c == primary and values[c] is not None else _fmt(values[c]) for c in cols]
        lines.append(f"| {r.dataset} | {protocol_label(r)} | {r.task} | " + " | ".join(cells)
                     + f" | {r.train_items} | {r.test_items} |")
    return "\n".join(lines) + "\n"


def report_json(cfg: BenchmarkConfig, encoder, rows: list[Row]) -> dict:
    """Nested dicts (dataset -> protocol -> values) that `dvc metrics show` and people read alike."""
    results: dict[str, dict] = {}
    for r in rows:
        d = asdict(r)
        d.pop("dataset"), d.pop("protocol")
        curve = d.pop("history")
        if curve:
            d["first_loss"], d["last_loss"] = (v if math.isfinite(v) else None for v in (curve[0]["loss"],
                                                                                           curve[-1]["loss"]))
        results.setdefault(r.dataset, {})[r.protocol] = {**column_values(r), **d}
    return {"name": cfg.name, "encoder": encoder.source, "encoder_digest": encoder.digest,
            "img_size": encoder.cfg.img_size, "protocols": ",".join(cfg.protocols), "results": results}


def write_report(cfg: BenchmarkConfig, encoder, rows: list[Row]) -> tuple[Path, Path]:
    out = Path(cfg.out)
    md, js = out / f"{cfg.name}.md", out / f"{cfg.name}.json"
    atomic_write_text(md, markdown_table(cfg, encoder, rows))
    atomic_write_text(js, json.dumps(report_json(cfg, encoder, rows), indent=2, allow_nan=False) + "\n")
    return md, js


def log_rows(run, rows: list[Row]) -> None:
    """Scores and training curves of `rows` on the tracking run (a `spectralgpt.tracking.Run`): the scores in one
    call, the curves (at most CURVE_POINTS points each, the last always) in one call per step."""
    scores, curves = {}, {}
    for r in rows:
        prefix = f"{r.dataset}.{r.protocol}"
        scores.update({f"{prefix}.{k}": v for k, v in r.metrics.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)})
        every = max(1, math.ceil(len(r.history) / CURVE_POINTS))
        for k, point in enumerate(r.history):
            if k % every == 0 or k == len(r.history) - 1:
                step = int(point.get("epoch", point.get("step")))
                curves.setdefault(step, {})[f"{prefix}.train_loss"] = point["loss"]
    run.log_metrics(scores)
    for step in sorted(curves):
        run.log_metrics(curves[step], step=step)


# ----------------------------------------------------------------------------------------------- stage
def open_encoder(cfg: BenchmarkConfig):
    from spectralgpt.protocols.features import load_encoder

    encoder = load_encoder(cfg.encoder, cfg.arch, cfg.img_size, cfg.model_overrides)
    log.info("benchmark %s: encoder %s (%s): %s", cfg.name, cfg.encoder, encoder.digest[:12], encoder.load_report)
    return encoder


def finish(cfg: BenchmarkConfig, encoder, rows: list[Row], run=None) -> BenchmarkResult:
    """Write the report of `rows` and, with a tracking `run`, attach it and the encoder's digest."""
    md, js = write_report(cfg, encoder, rows)
    if run is not None:
        run.set_tags({"spectralgpt.encoder_digest": encoder.digest, "spectralgpt.benchmark": cfg.name})
        run.log_artifacts([md, js], "benchmark")
    log.info("benchmark %s: %d rows -> %s", cfg.name, len(rows), md)
    return BenchmarkResult(rows, md, js, encoder.digest)


def select(cfg: BenchmarkConfig, datasets: list[str] | None = None) -> list[BenchmarkDataset]:
    """The benchmark's datasets, or those named in `datasets` (an unknown name is an error)."""
    unknown = sorted(set(datasets or ()) - {d.name for d in cfg.datasets})
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; the benchmark has {', '.join(d.name for d in cfg.datasets)}")
    return [d for d in cfg.datasets if not datasets or d.name in datasets]


def benchmark(cfg: BenchmarkConfig, run=None, datasets: list[str] | None = None) -> BenchmarkResult:
    """Run the protocols over the datasets (or only those named in `datasets`), write the report and, with a
    tracking `run`, log it. Returns the rows and the report's paths."""
    entries = select(cfg, datasets)
    device = resolve_device(cfg.device)
    encoder = open_encoder(cfg)
    rows = [row for entry in entries for row in run_dataset(cfg, entry, encoder, device, run)]
    return finish(cfg, encoder, rows, run)


__all__ = ["COLUMNS", "BenchmarkResult", "Prepared", "Row", "benchmark", "finish", "open_encoder", "prepare",
           "run_dataset", "select", "task_for_labels", "write_report"]
