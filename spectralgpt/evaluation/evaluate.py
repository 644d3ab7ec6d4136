"""Evaluation stage: a fine-tuned model on a held-out split of its corpus, with the task's metrics over the
whole split, a report (metrics.json, per_class.csv, figures) and the data version it was measured on.

Dense tasks are scored on whole scenes: the tiles a scene was cut into are predicted, stitched back (overlaps
averaged) and every pixel counts once. `legacy={"oscd_legacy_patch_eval": True}` scores the stored tiles one by
one instead, so that pixels in overlapping tiles count several times, as the published OSCD evaluation did."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from spectralgpt.device import resolve_device
from spectralgpt.evaluation.report import save_report
from spectralgpt.io.shards import ShardCorpus
from spectralgpt.models import load_model
from spectralgpt.tasks import get_task
from spectralgpt.training.distributed import rank_world

log = logging.getLogger(__name__)


class Scenes:
    """Stitches tile predictions back into their scenes (index columns sample, row_off, col_off, window);
    a scene is handed to the metrics, as log-probabilities and its mask, once all its tiles are in."""

    def __init__(self, corpus: ShardCorpus, ignore_index: int):
        index = corpus.index
        self.scene_of = index["sample"].to_numpy()
        self.row, self.col = index["row_off"].to_numpy(), index["col_off"].to_numpy()
        self.win = index["window"].to_numpy()
        self.left = index.groupby("sample").size().to_dict()
        self.ignore, self.open = ignore_index, {}

    def add(self, indices, probs: torch.Tensor, target: torch.Tensor):
        for k, i in enumerate(indices):
            s = self.scene_of[i]
            if s not in self.open:
                rows = self.scene_of == s
                h, w = int((self.row + self.win)[rows].max()), int((self.col + self.win)[rows].max())
                self.open[s] = (torch.zeros(probs.shape[1], h, w), torch.zeros(h, w),
                                torch.full((h, w), self.ignore, dtype=target.dtype))
            acc, count, mask = self.open[s]
            r, c, n = int(self.row[i]), int(self.col[i]), int(self.win[i])
            acc[:, r:r + n, c:c + n] += probs[k]
            count[r:r + n, c:c + n] += 1
            mask[r:r + n, c:c + n] = target[k]
            self.left[s] -= 1
            if self.left[s] == 0:
                acc, count, mask = self.open.pop(s)
                yield (acc / count.clamp_min(1)).clamp_min(1e-12).log()[None], mask[None]


def predictions(model, task, dataset, batch_size: int, indices=None):
    """(indices, logits as float32 on the CPU, target) for every batch of `dataset` (or of its `indices`)."""
    device = next(model.parameters()).device
    rows = list(range(len(dataset))) if indices is None else list(indices)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        batch = dataset.batch(chunk)
        target = batch[task.target]
        logits = task.forward(model, {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
        yield chunk, logits.float().cpu(), target


def _with_bar(batches, total: int, split: str):
    """Pass the (indices, logits, target) batches through, advancing an items/s bar on stderr (a terminal only)."""
    with tqdm(total=total, desc=f"evaluate {split}", unit="item", leave=False, disable=None) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch[0]))


SAMPLES_SHOWN = 4


def show_samples(corpus: ShardCorpus, shown: list, class_names, path: Path, ignore_index: int) -> Path:
    """Image / truth / prediction panels of evaluated tiles (stored pixels, both dates for change detection)."""
    from spectralgpt.evaluation.report import plot_dense_samples

    idx = [int(i) for i, _, _ in shown]
    images2 = corpus.get_batch(idx, "image2") if "image2" in corpus.arrays else None
    return plot_dense_samples(corpus.get_batch(idx, "image"), torch.stack([t for _, _, t in shown]).numpy(),
                              torch.stack([p for _, p, _ in shown]).numpy(), class_names, path, bands=corpus.bands,
                              images2=images2, ignore_index=ignore_index)


@torch.no_grad()
def validate(model, task, dataset, num_classes: int, extra: dict | None = None, batch_size: int = 32) -> dict:
    """The task's metrics of `model` on `dataset` (its stored tiles or images, one by one), as scalars. Under DDP
    each rank scores every world-th item and the metric states are summed across ranks."""
    rank, world = rank_world()
    metrics = task.metrics(num_classes, extra)
    for _, logits, target in predictions(model, task, dataset, batch_size, range(rank, len(dataset), world)):
        metrics.update(logits, target)
    return {k: v for k, v in metrics.compute().items() if not isinstance(v, list)}


@torch.no_grad()
def evaluate(model_dir: str | Path, corpus_dir: str | Path, split: str = "test", batch_size: int = 32,
             out_dir: str | Path | None = None, legacy: dict | None = None, device: str = "auto") -> dict:
    """-> flat metrics dict (plus `data_version`: the content digest of the evaluated split, `split`,
    `num_items`); writes the report when `out_dir`.
    device "auto": cuda when there is a GPU, else cpu."""
    device = resolve_device(device)
    model, meta = load_model(model_dir)
    model.to(device)
    extra = meta.get("extra") or {}
    if extra.get("task") is None:
        raise ValueError(f"{model_dir} records no task: not a fine-tuned model")
    task = get_task(extra["task"])
    corpus = ShardCorpus(corpus_dir, split=split)
    if len(corpus) == 0:
        raise ValueError(f"{corpus_dir} has no {split!r} samples to evaluate on")
    dataset = task.dataset(corpus, model.cfg.img_size, train=False, recipe=meta.get("normalization") or "auto")
    num_classes = model.cfg.num_classes
    options = dict(legacy or {})
    per_tile = bool(options.pop("oscd_legacy_patch_eval", False))
    metrics = task.metrics(num_classes, extra, **options)
    stitch = task.dense and not per_tile and dataset.size == corpus.size
    ignore = {**task.metric_options(extra), **options}.get("ignore_index", 255)
    scenes = Scenes(corpus, ignore) if stitch else None
    shown: list = []  # a few dense samples for the image / truth / prediction panels
    for indices, logits, target in _with_bar(predictions(model, task, dataset, batch_size), len(dataset), split):
        if task.dense and len(shown) < SAMPLES_SHOWN:
            shown += list(zip(indices, logits.argmax(1), target))[:SAMPLES_SHOWN - len(shown)]
        if scenes is not None:
            for done in scenes.add(indices, logits.softmax(1), target):
                metrics.update(*done)
        else:
            metrics.update(logits, target)
    values = metrics.compute()
    values.update(data_version=corpus.content_digest, split=split, num_items=len(dataset),
                  primary_metric=task.primary_metric,
                  scored_on="scenes" if scenes is not None else ("tiles" if task.dense else "images"))
    if out_dir is not None:
        names = extra.get("class_names") or task.class_names
        save_report(values, out_dir, task.name, class_names=names, confusion=metrics.confusion_matrix())
        if shown:
            show_samples(corpus, shown, names, Path(out_dir) / "samples.png", ignore)
    log.info("%s on %s/%s: %s = %s", task.name, Path(corpus_dir).name, split, task.primary_metric,
             values[task.primary_metric])
    return values
