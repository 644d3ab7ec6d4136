"""Evaluation reports: ``metrics.json`` (for ``dvc metrics show``), ``per_class.csv`` (for DVC plots) and PNG
figures (row-normalised confusion matrix, per-class bar chart). Every file is written atomically.

Figures use matplotlib's object-oriented API on the Agg canvas (no pyplot, no global backend switch), so
this works headless, in worker processes and threads.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spectralgpt.evaluation.metrics import TASKS, to_jsonable
from spectralgpt.io.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["plot_confusion_matrix", "plot_dense_samples", "plot_per_class", "save_report"]

PER_CLASS_PREFIX = "per_class_"

# the per-class value shown in each task's bar chart
_BAR_METRIC = {
    "classification": "per_class_accuracy",
    "multilabel": "per_class_ap",
    "segmentation": "per_class_iou",
    "change": "per_class_recall",
}


def _class_names(task: str, n: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is None:
        return ["no_change", "change"] if task == "change" and n == 2 else [f"class_{i}" for i in range(n)]
    names = [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"class_names has {len(names)} names but the per-class values have {n} entries")
    return names


def _split(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list]]:
    scalars: dict[str, Any] = {}
    per_class: dict[str, list] = {}
    for key, value in metrics.items():
        value = to_jsonable(value)
        if isinstance(value, list):
            per_class[key] = value
        elif value is None or isinstance(value, (bool, int, float, str)):
            scalars[key] = value
        else:
            raise TypeError(f"metric {key!r} has unsupported type {type(value).__name__}")
    lengths = {len(v) for v in per_class.values()}
    if len(lengths) > 1:
        raise ValueError(f"per-class metrics have different lengths: { {k: len(v) for k, v in per_class.items()} }")
    return scalars, per_class


def save_report(
    metrics: Mapping[str, Any],
    out_dir: str | os.PathLike,
    task: str,
    class_names: Sequence[str] | None = None,
    confusion: np.ndarray | None = None,
) -> dict[str, Path]:
    """Write the evaluation report of `task` into `out_dir` and return the written paths by name.

    * ``metrics.json``: the scalar metrics (flat; NaN as null) plus ``"task"``; lists are left out.
    * ``per_class.csv``: one row per class: ``class_id``, ``class`` and each ``per_class_*`` value (prefix
      dropped, e.g. ``iou``); empty cells for undefined values.
    * ``per_class.png``: bar chart of the task's main per-class value, when there is one.
    * ``confusion_matrix.png``: when `confusion` is a square (C, C) count matrix (rows = truth), normalised
      by row. Per-class 2x2 matrices (multilabel) are skipped.
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not allowed; expected one of {list(TASKS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scalars, per_class = _split(metrics)
    written: dict[str, Path] = {}

    payload = {"task": task, **scalars}
    written["metrics"] = out / "metrics.json"
    atomic_write_text(written["metrics"], json.dumps(payload, indent=2, allow_nan=False) + "\n")

    n = len(next(iter(per_class.values()))) if per_class else 0
    if n == 0 and confusion is not None and np.ndim(confusion) == 2:
        n = np.shape(confusion)[0]
    names = _class_names(task, n, class_names) if n else []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["class_id", "class", *(k.removeprefix(PER_CLASS_PREFIX) for k in per_class)])
    for i, name in enumerate(names):
        row = [v[i] if i < len(v) else None for v in per_class.values()]
        writer.writerow([i, name, *("" if v is None else v for v in row)])
    written["per_class"] = out / "per_class.csv"
    atomic_write_text(written["per_class"], buf.getvalue())

    bar_key = _BAR_METRIC[task]
    if bar_key in per_class:
        label = bar_key.removeprefix(PER_CLASS_PREFIX)
        written["per_class_plot"] = plot_per_class(
            per_class[bar_key], out / "per_class.png", class_names=names, title=f"{task}: {label} per class",
            xlabel=label,
        )

    if confusion is not None:
        confusion = np.asarray(confusion)
        if confusion.ndim == 2 and confusion.shape[0] == confusion.shape[1]:
            cm_names = _class_names(task, confusion.shape[0], class_names if class_names is not None else names or None)
            written["confusion_matrix"] = plot_confusion_matrix(
                confusion, out / "confusion_matrix.png", class_names=cm_names, title=f"{task}: confusion matrix"
            )
        elif confusion.ndim == 3 and confusion.shape[1:] == (2, 2):  # multilabel: one 2x2 per class
            written["confusion_matrix"] = plot_multilabel_confusion(
                confusion, out / "confusion_matrix.png", class_names=names or None,
                title=f"{task}: per-class confusion")
        else:
            log.info("confusion matrix of shape %s is not (C, C) or (C, 2, 2); no figure written", confusion.shape)
    log.info("wrote %s report to %s: %s", task, out, ", ".join(p.name for p in written.values()))
    return written


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.15)  # grows to fit long class names
    return Path(path)


def _true_colour(image: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) in [0, 1]: B4, B3, B2 picked by name, else the bands that stand for them by
    wavelength (HLS:RED, OLI:B4, RGB:RED, ...; grey of the first band when there are none), each stretched between
    its 2nd and 98th percentile (the usual display of a Sentinel-2 true-colour composite)."""
    from spectralgpt.bands import canonical, equivalent_band

    names = [canonical(b) for b in bands]

    def pick(target: str) -> int | None:
        if target in names:
            return names.index(target)
        return next((i for i, b in enumerate(names) if equivalent_band(b, (target,)) == target), None)

    idx = [pick(b) for b in ("B4", "B3", "B2")]
    idx = [0, 0, 0] if None in idx else idx
    rgb = np.stack([np.asarray(image[i], np.float64) for i in idx], axis=-1)
    lo, hi = np.nanpercentile(rgb, 2, axis=(0, 1)), np.nanpercentile(rgb, 98, axis=(0, 1))
    return np.clip((rgb - lo) / np.maximum(hi - lo, 1e-9), 0, 1)


def plot_dense_samples(images, truths, preds, class_names: Sequence[str], path: str | os.PathLike, *,
                       bands: Sequence[str] | None = None, images2=None, ignore_index: int | None = None,
                       max_samples: int = 4, title: str | None = None) -> Path:
    """One row per sample: the true-colour image (and the second date, for change detection), the truth and the
    prediction in the class colours of `spectralgpt.inference.colormap` (what a predicted map shows in QGIS),
    with a legend. images: (N, C, H, W) in `bands` order (default: the pretraining bands); truths, preds: (N, H, W)
    class values; `ignore_index` pixels of the truth are drawn white."""
    import matplotlib
    from matplotlib.patches import Patch

    from spectralgpt.bands import PRETRAIN_BANDS
    from spectralgpt.inference.colormap import class_colors

    bands = tuple(bands or PRETRAIN_BANDS)
    n = min(max_samples, len(images))
    if n == 0:
        raise ValueError("plot_dense_samples needs at least one sample")
    k = len(class_names)
    colors = class_colors(class_names)
    cmap = matplotlib.colors.ListedColormap([np.array(colors[i][:3]) / 255 for i in range(k)]).with_extremes(
        bad="white", over="white", under="white")
    cols = (["date 1", "date 2"] if images2 is not None else ["image"]) + ["truth", "prediction"]
    fig = _new_figure(2.6 * len(cols), 2.6 * n + 0.8)
    axes = fig.subplots(n, len(cols), squeeze=False)
    for i in range(n):
        panels = [_true_colour(np.asarray(images[i]), bands)]
        if images2 is not None:
            panels.append(_true_colour(np.asarray(images2[i]), bands))
        for j, img in enumerate(panels):
            axes[i, j].imshow(img, interpolation="nearest")
        for j, lab in enumerate((truths[i], preds[i]), start=len(panels)):
            lab = np.asarray(lab)
            masked = np.ma.masked_where((lab == ignore_index) if ignore_index is not None else np.zeros_like(lab, bool), lab)
            axes[i, j].imshow(masked, cmap=cmap, vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j])
    fig.legend(handles=[Patch(color=np.array(colors[c][:3]) / 255, label=str(name)) for c, name in enumerate(class_names)],
               loc="lower center", ncol=min(k, 5), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_multilabel_confusion(confusion: np.ndarray, out_path: str | os.PathLike,
                              class_names: Sequence[str] | None = None, *, title: str | None = None) -> Path:
    """Per-class (C, 2, 2) confusion matrices ([[TN, FP], [FN, TP]]) as one figure: for each class the
    true-positive rate TP / (TP + FN) and the false-positive rate FP / (FP + TN), annotated with counts."""
    cm = np.asarray(confusion, dtype=np.float64)
    n = cm.shape[0]
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(n)]
    tn, fp, fn, tp = cm[:, 0, 0], cm[:, 0, 1], cm[:, 1, 0], cm[:, 1, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.stack([tp / (tp + fn), fp / (fp + tn)], axis=1)
    fig = _new_figure(6.0, float(np.clip(1.0 + 0.35 * n, 3.0, 11.0)))
    ax = fig.add_subplot()
    import matplotlib

    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(rates), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="rate")
    ax.set_xticks([0, 1], labels=["true-positive rate", "false-positive rate"])
    ax.set_yticks(range(n), labels=names, fontsize=float(np.clip(140.0 / n, 5.0, 10.0)))
    for i in range(n):
        for j, (num, den) in enumerate(((tp[i], tp[i] + fn[i]), (fp[i], fp[i] + tn[i]))):
            ax.text(j, i, f"{int(num)}/{int(den)}", ha="center", va="center", fontsize=7,
                    color="white" if np.nan_to_num(rates[i, j]) > 0.6 else "black")
    if title:
        ax.set_title(title)
    return _save(fig, out_path)


def plot_confusion_matrix(
    confusion: np.ndarray,
    out_path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    *,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Render a (C, C) confusion matrix (rows = truth, columns = prediction) as a PNG.

    With `normalize` each row is divided by its sum (rows without samples are left blank); cells are
    annotated for up to 25 classes. The figure grows with the number of classes (readable for 2-19).
    """
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got shape {cm.shape}")
    n = cm.shape[0]
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"class_names has {len(names)} names for a {n}x{n} confusion matrix")
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        shown = np.divide(cm, rows, out=np.full_like(cm, np.nan), where=rows > 0)
    else:
        shown = cm

    side = float(np.clip(2.0 + 0.45 * n, 3.5, 11.0))
    fig = _new_figure(side + 1.5, side)
    ax = fig.add_subplot()
    import matplotlib

    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="white")
    vmax = 1.0 if normalize else (np.nanmax(shown) if np.isfinite(shown).any() else 1.0)
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "count")
    fontsize = float(np.clip(140.0 / n, 5.0, 10.0))
    ax.set_xticks(range(n), labels=names, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center",
                  fontsize=fontsize)
    ax.set_yticks(range(n), labels=names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    if n <= 25:
        for i in range(n):
            for j in range(n):
                v = shown[i, j]
                if np.isnan(v):
                    continue
                text = f"{v:.2f}" if normalize else f"{int(v)}"
                ax.text(j, i, text, ha="center", va="center", fontsize=fontsize * 0.85,
                        color="white" if v > 0.6 * vmax else "black")
    return _save(fig, out_path)


def plot_per_class(
    values: Sequence[float | None],
    out_path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    *,
    title: str | None = None,
    xlabel: str | None = None,
) -> Path:
    """Horizontal bar chart of one per-class value (None/NaN shown as 'n/a'), written as a PNG."""
    vals = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    n = len(vals)
    if n == 0:
        raise ValueError("no per-class values to plot")
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"class_names has {len(names)} names for {n} values")
    fig = _new_figure(7.0, float(np.clip(1.0 + 0.35 * n, 2.5, 10.0)))
    ax = fig.add_subplot()
    y = np.arange(n)
    ax.barh(y, np.nan_to_num(vals, nan=0.0), color="tab:blue")
    ax.set_yticks(y, labels=names, fontsize=float(np.clip(140.0 / n, 6.0, 10.0)))
    ax.invert_yaxis()
    finite = vals[np.isfinite(vals)]
    upper = 1.0 if finite.size == 0 or (finite.min() >= 0 and finite.max() <= 1) else float(finite.max()) * 1.1
    ax.set_xlim(0.0, upper * 1.12)
    for i, v in enumerate(vals):
        ax.text((0.0 if np.isnan(v) else v) + upper * 0.01, i, "n/a" if np.isnan(v) else f"{v:.3f}",
                va="center", fontsize=8)
    if xlabel:
        ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return _save(fig, out_path)
