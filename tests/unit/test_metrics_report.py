"""Evaluation reports: metrics.json (flat, valid), per_class.csv, PNG figures that open with a sensible shape."""

import csv
import json

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from spectralgpt.evaluation import plot_confusion_matrix, plot_per_class, save_report, task_metrics

SEGMUNICH_LIKE = [
    "background", "arable land", "permanent crops", "pastures", "forests", "surface water", "shrub",
    "open spaces", "wetlands", "mine, dump and construction sites", "artificial vegetated areas",
    "urban fabric", "industrial or commercial units",
]  # fmt: skip


def seg_metrics(c=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c - 1, (2, 24, 24), generator=g)  # the last class never occurs
    logits = torch.randn(2, c, 24, 24, generator=g) + 2.0 * torch.nn.functional.one_hot(target, c).permute(0, 3, 1, 2)
    logits[:, c - 1] = -50.0
    target[:, :2] = 255
    m = task_metrics("segmentation", c)
    m.update(logits, target)
    return m


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_png(path):
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img


def test_segmentation_report(tmp_path):
    m = seg_metrics()
    metrics = m.compute()
    out = tmp_path / "reports" / "segmunich"
    written = save_report(metrics, out, "segmentation", SEGMUNICH_LIKE, m.confusion_matrix())
    expected = {"metrics.json", "per_class.csv", "per_class.png", "confusion_matrix.png"}
    assert {p.name for p in written.values()} == expected
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written.values())  # no temp files left

    data = json.loads((out / "metrics.json").read_text())
    assert data["task"] == "segmentation"
    assert data["miou"] == pytest.approx(metrics["miou"])
    assert all(v is None or isinstance(v, (int, float, str)) for v in data.values())  # flat scalars
    assert not any(k.startswith("per_class_") for k in data)

    rows = read_csv(out / "per_class.csv")
    assert len(rows) == 13
    assert list(rows[0]) == ["class_id", "class", "iou", "f1", "support"]
    assert rows[9]["class"] == "mine, dump and construction sites"  # comma survives quoting
    assert float(rows[1]["iou"]) == pytest.approx(metrics["per_class_iou"][1])
    assert rows[12]["iou"] == "" and rows[12]["support"] == "0"  # absent class: undefined, empty cell

    cm_img = read_png(out / "confusion_matrix.png")
    assert 400 <= cm_img.shape[0] <= 1600 and 400 <= cm_img.shape[1] <= 1800
    assert cm_img[..., :3].std() > 0.05  # not a blank canvas
    read_png(out / "per_class.png")


@pytest.mark.parametrize("n", [2, 19])
def test_confusion_matrix_figure_sizes(tmp_path, n):
    rng = np.random.default_rng(n)
    cm = rng.integers(0, 50, (n, n)) + np.diag(rng.integers(50, 200, n))
    cm[0] = 0  # a class without samples: a blank row, no division warning
    names = [f"class with a long name {i}" for i in range(n)]
    with np.errstate(all="raise"):
        path = plot_confusion_matrix(cm, tmp_path / "cm.png", names, title="t")
    img = read_png(path)
    assert 300 <= img.shape[0] <= 1600 and 300 <= img.shape[1] <= 1800
    with pytest.raises(ValueError, match="names"):
        plot_confusion_matrix(cm, tmp_path / "bad.png", names[:-1])
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "bad.png")


def test_change_report_defaults_class_names_and_nulls(tmp_path):
    m = task_metrics("change", zero_division=float("nan"))
    m.update(torch.zeros(1, 8, 8, dtype=torch.long), torch.zeros(1, 8, 8, dtype=torch.long))  # nothing changed
    written = save_report(m.compute(), tmp_path, "change", confusion=m.confusion_matrix())
    data = json.loads(written["metrics"].read_text())
    assert data["f1"] is None and data["overall_accuracy"] == 1.0  # NaN written as null, the JSON stays valid
    rows = read_csv(written["per_class"])
    assert [r["class"] for r in rows] == ["no_change", "change"]
    assert rows[1]["precision"] == ""
    read_png(written["confusion_matrix"])


def test_multilabel_report_draws_per_class_confusion(tmp_path):
    g = torch.Generator().manual_seed(1)
    m = task_metrics("multilabel", 4)
    m.update(torch.randn(16, 4, generator=g), (torch.rand(16, 4, generator=g) < 0.5).long())
    names = ["a", "b", "c", "d"]
    confusion = m.confusion_matrix()
    assert confusion.shape == (4, 2, 2) and confusion.sum() == 16 * 4
    written = save_report(m.compute(), tmp_path, "multilabel", names, confusion=confusion)
    image = read_png(written["confusion_matrix"])
    assert image.shape[0] > 100 and image.std() > 0
    rows = read_csv(written["per_class"])
    assert [r["class"] for r in rows] == names and "ap" in rows[0]
    with pytest.raises(ValueError, match="class_names"):
        save_report(m.compute(), tmp_path, "multilabel", names[:3])
    with pytest.raises(ValueError, match="task="):
        save_report(m.compute(), tmp_path, "regression")


def test_plot_per_class_with_undefined_values(tmp_path):
    path = plot_per_class([0.5, None, float("nan"), 0.9], tmp_path / "bars.png", ["a", "b", "c", "d"], title="iou")
    img = read_png(path)
    assert img.shape[0] >= 200 and img.shape[1] >= 400


def test_dense_sample_panels(tmp_path):
    from spectralgpt.evaluation.report import plot_dense_samples

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 3000, (5, 12, 32, 32)).astype(np.uint16)
    truth = rng.integers(0, 3, (5, 32, 32))
    truth[:, :4] = 255  # ignored pixels
    pred = rng.integers(0, 3, (5, 32, 32))
    seg = plot_dense_samples(imgs, truth, pred, ["forests", "surface water", "buildings"], tmp_path / "seg.png",
                             ignore_index=255, max_samples=3)
    cd = plot_dense_samples(imgs, truth % 2, pred % 2, ["no change", "change"], tmp_path / "cd.png", images2=imgs[::-1],
                            max_samples=2)
    a, b = mpimg.imread(seg), mpimg.imread(cd)
    assert 600 < a.shape[1] < 950 and 700 < a.shape[0] < 1100  # 3 rows x (image, truth, prediction)
    assert b.shape[1] > a.shape[1] and b.shape[0] < a.shape[0]  # 2 rows x 4 columns (both dates)
    water = np.array([30, 100, 220]) / 255  # the class colour a predicted map uses for surface water
    assert (np.abs(a[..., :3] - water).max(-1) < 0.02).any()
    with pytest.raises(ValueError):
        plot_dense_samples(imgs[:0], truth[:0], pred[:0], ["a"], tmp_path / "none.png")
