"""Task metrics against independent computations (scikit-learn / numpy), streaming vs one-shot, legacy modes."""

import json
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from spectralgpt.evaluation import PRIMARY_METRICS, TASKS, task_metrics

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")

TOL = dict(rel=1e-5, abs=1e-6)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def feed(m, preds, target, sizes):
    """Update `m` with consecutive uneven batches of the given sizes (they must cover the first axis)."""
    assert sum(sizes) == preds.shape[0]
    start = 0
    for n in sizes:
        m.update(preds[start : start + n], target[start : start + n])
        start += n
    return m.compute()


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], list):
            assert [None if v is None else pytest.approx(v, **TOL) for v in a[k]] == b[k], k
        elif a[k] is None:
            assert b[k] is None, k
        else:
            assert a[k] == pytest.approx(b[k], **TOL), k


def nan_list(x):
    return [None if np.isnan(v) else pytest.approx(float(v), **TOL) for v in x]


# ----------------------------------------------------------------------------------------------------------
# classification


@pytest.fixture
def cls_data():
    n, c = 103, 10
    target = torch.randint(0, c, (n,), generator=gen(0))
    logits = torch.randn(n, c, generator=gen(1)) + 1.2 * torch.nn.functional.one_hot(target, c)
    return logits, target


def test_classification_matches_sklearn(cls_data):
    logits, target = cls_data
    c = logits.shape[1]
    out = feed(task_metrics("classification", c), logits, target, [1, 40, 17, 45])
    y, p, labels = target.numpy(), logits.argmax(1).numpy(), list(range(c))
    assert out["overall_accuracy"] == pytest.approx(skm.accuracy_score(y, p), **TOL)
    assert out["per_class_accuracy"] == nan_list(skm.recall_score(y, p, labels=labels, average=None))
    assert out["mean_class_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p), **TOL)
    assert out["macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro"), **TOL)
    assert out["kappa"] == pytest.approx(skm.cohen_kappa_score(y, p), **TOL)
    assert out["top5_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, logits.numpy(), k=5, labels=labels), **TOL)
    assert out["num_samples"] == len(y)
    assert out["per_class_support"] == np.bincount(y, minlength=c).tolist()
    assert 0.2 < out["overall_accuracy"] < 0.9  # informative but imperfect predictions


def test_classification_confusion_matrix(cls_data):
    logits, target = cls_data
    m = task_metrics("classification", 10)
    feed(m, logits, target, [50, 53])
    expected = skm.confusion_matrix(target.numpy(), logits.argmax(1).numpy(), labels=list(range(10)))
    np.testing.assert_array_equal(m.confusion_matrix(), expected)


def test_classification_streaming_equals_one_shot(cls_data):
    logits, target = cls_data
    one = feed(task_metrics("classification", 10), logits, target, [103])
    many = feed(task_metrics("classification", 10), logits, target, [7, 1, 60, 35])
    assert_same(one, many)


def test_classification_absent_class_and_top_k():
    target = torch.randint(0, 5, (60,), generator=gen(2))  # class 5 never occurs
    logits = torch.randn(60, 6, generator=gen(3))
    out = feed(task_metrics("classification", 6), logits, target, [60])
    y, p = target.numpy(), logits.argmax(1).numpy()
    assert out["per_class_accuracy"][5] is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert out["mean_class_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p), **TOL)
    assert "top5_accuracy" in out
    assert "top5_accuracy" not in feed(task_metrics("classification", 5), logits[:, :5], target, [60])


def test_classification_rejects_labels_as_predictions(cls_data):
    _, target = cls_data
    with pytest.raises(ValueError, match="logits or probabilities"):
        task_metrics("classification", 10).update(target, target)


# ----------------------------------------------------------------------------------------------------------
# multilabel


@pytest.fixture
def ml_data():
    n, c = 90, 7
    target = (torch.rand(n, c, generator=gen(4)) < 0.3).long()
    logits = torch.randn(n, c, generator=gen(5)) + 1.5 * target
    return logits, target


def test_multilabel_matches_sklearn(ml_data):
    logits, target = ml_data
    out = feed(task_metrics("multilabel", 7), logits, target, [13, 32, 45])
    y, s = target.numpy(), torch.sigmoid(logits).numpy()
    pred = (s > 0.5).astype(int)
    assert out["micro_map"] == pytest.approx(skm.average_precision_score(y, s, average="micro"), **TOL)
    assert out["macro_map"] == pytest.approx(skm.average_precision_score(y, s, average="macro"), **TOL)
    assert out["per_class_ap"] == nan_list(skm.average_precision_score(y, s, average=None))
    assert out["micro_f1"] == pytest.approx(skm.f1_score(y, pred, average="micro"), **TOL)
    assert out["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"), **TOL)
    assert out["per_class_support"] == y.sum(0).tolist()
    assert out["num_samples"] == 90
    assert "micro_map_dataset" not in out


def test_multilabel_threshold_and_probability_inputs(ml_data):
    logits, target = ml_data
    probs = torch.sigmoid(logits)
    out = feed(task_metrics("multilabel", 7, threshold=0.3, inputs="probs"), probs, target, [45, 45])
    y, pred = target.numpy(), (probs.numpy() > 0.3).astype(int)
    assert out["micro_f1"] == pytest.approx(skm.f1_score(y, pred, average="micro"), **TOL)
    assert out["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"), **TOL)
    from_logits = feed(task_metrics("multilabel", 7, threshold=0.3, inputs="logits"), logits, target, [90])
    assert_same(out, from_logits)


def test_multilabel_streaming_equals_one_shot(ml_data):
    logits, target = ml_data
    assert_same(
        feed(task_metrics("multilabel", 7), logits, target, [90]),
        feed(task_metrics("multilabel", 7), logits, target, [2, 50, 11, 27]),
    )


def test_multilabel_map_per_batch_is_the_batch_weighted_mean(ml_data):
    logits, target = ml_data
    sizes = [13, 32, 45]
    legacy = feed(task_metrics("multilabel", 7, map_per_batch=True), logits, target, sizes)
    y, s = target.numpy(), logits.numpy()
    start, weighted = 0, 0.0
    for n in sizes:  # per-batch micro AP on raw logits, as the original, weighted by batch size
        weighted += n * skm.average_precision_score(y[start : start + n], s[start : start + n], average="micro")
        start += n
    dataset_level = skm.average_precision_score(y, s, average="micro")
    assert legacy["micro_map"] == pytest.approx(weighted / len(y), **TOL)
    assert legacy["micro_map_dataset"] == pytest.approx(dataset_level, **TOL)
    assert abs(legacy["micro_map"] - dataset_level) > 1e-3
    assert legacy["macro_map"] == pytest.approx(skm.average_precision_score(y, s, average="macro"), **TOL)


def test_multilabel_class_without_positives_is_undefined(ml_data):
    logits, target = ml_data
    target = target.clone()
    target[:, 2] = 0
    out = feed(task_metrics("multilabel", 7), logits, target, [90])
    assert out["per_class_ap"][2] is None
    keep = [0, 1, 3, 4, 5, 6]
    expected = skm.average_precision_score(target.numpy()[:, keep], logits.numpy()[:, keep], average="macro")
    assert out["macro_map"] == pytest.approx(expected, **TOL)
    assert m_confusion_shape(logits, target) == (7, 2, 2)


def m_confusion_shape(logits, target):
    m = task_metrics("multilabel", 7)
    m.update(logits, target)
    return m.confusion_matrix().shape


# ----------------------------------------------------------------------------------------------------------
# segmentation


@pytest.fixture
def seg_data():
    """3 images, 5 classes; class 4 absent from truth and prediction; ~10 % pixels ignored (255)."""
    b, c, h, w = 3, 5, 16, 16
    target = torch.randint(0, 4, (b, h, w), generator=gen(6))
    onehot = torch.nn.functional.one_hot(target, c).permute(0, 3, 1, 2)
    logits = torch.randn(b, c, h, w, generator=gen(7)) + 1.5 * onehot
    logits[:, 4] = -100.0
    target[torch.rand(b, h, w, generator=gen(8)) < 0.1] = 255
    return logits, target


def seg_reference(logits, target, c, ignore=(255,)):
    y, p = target.numpy().ravel(), logits.argmax(1).numpy().ravel()
    valid = ~np.isin(y, ignore)
    y, p, labels = y[valid], p[valid], list(range(c))
    cm = skm.confusion_matrix(y, p, labels=labels)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    iou = np.where(union > 0, np.diag(cm) / np.maximum(union, 1), np.nan)  # NaN: absent from both
    sk_iou = skm.jaccard_score(y, p, labels=labels, average=None, zero_division=0)
    np.testing.assert_allclose(np.nan_to_num(iou), sk_iou)
    return {
        "oa": skm.accuracy_score(y, p),
        "iou": iou,
        "f1": skm.f1_score(y, p, labels=labels, average=None, zero_division=np.nan),
        "cm": skm.confusion_matrix(y, p, labels=labels),
        "n": int(valid.sum()),
    }


def test_segmentation_matches_sklearn(seg_data):
    logits, target = seg_data
    m = task_metrics("segmentation", 5)
    out = feed(m, logits, target, [1, 2])
    ref = seg_reference(logits, target, 5)
    assert out["overall_accuracy"] == pytest.approx(ref["oa"], **TOL)
    assert out["per_class_iou"] == nan_list(ref["iou"])
    assert out["per_class_f1"] == nan_list(ref["f1"])
    assert out["per_class_iou"][4] is None and out["per_class_f1"][4] is None  # absent from both
    assert out["miou"] == pytest.approx(np.nanmean(ref["iou"]), **TOL)
    assert out["miou_no_background"] == pytest.approx(np.nanmean(ref["iou"][1:]), **TOL)
    assert out["mean_f1"] == pytest.approx(np.nanmean(ref["f1"]), **TOL)
    assert out["num_pixels"] == ref["n"]
    np.testing.assert_array_equal(m.confusion_matrix(), ref["cm"])


def test_segmentation_miou_hand_computed():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
    preds = torch.tensor([[[0, 1, 1, 1], [2, 0, 3, 0]]])  # class 3 only predicted on an ignored pixel
    out = feed(task_metrics("segmentation", 5), preds, target, [1])
    # class 0: tp 1, fp 1, fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 1, fn 1 -> 1/2; 3, 4 absent
    assert out["per_class_iou"][:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert out["per_class_iou"][3:] == [None, None]
    assert out["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert out["miou_no_background"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert out["overall_accuracy"] == pytest.approx(4 / 6)
    assert out["num_pixels"] == 6


def test_segmentation_legacy_plain_mean(seg_data):
    logits, target = seg_data
    legacy = feed(task_metrics("segmentation", 5, miou_plain_mean=True), logits, target, [3])
    assert legacy["miou"] is None  # class 4 absent -> NaN, as the original
    fixed = feed(task_metrics("segmentation", 4, miou_plain_mean=True), logits[:, :4], target, [3])
    ref = seg_reference(logits[:, :4], target, 4)
    assert fixed["miou"] == pytest.approx(np.mean(ref["iou"]), **TOL)  # every class present: plain mean


def test_segmentation_streaming_equals_one_shot(seg_data):
    logits, target = seg_data
    assert_same(
        feed(task_metrics("segmentation", 5), logits, target, [3]),
        feed(task_metrics("segmentation", 5), logits, target, [2, 1]),
    )


def test_segmentation_ignored_pixels_do_not_count(seg_data):
    logits, target = seg_data
    base = feed(task_metrics("segmentation", 5), logits, target, [3])
    scrambled = logits.clone()
    ignored = (target == 255).unsqueeze(1).expand_as(scrambled)
    scrambled[ignored] = torch.randn(int(ignored.sum()), generator=gen(9)) * 50
    assert_same(base, feed(task_metrics("segmentation", 5), scrambled, target, [3]))
    # Sen1Floods11 style: -1 marks no-data; uint8 masks with 255 also work
    minus_one = target.clone().to(torch.int16)
    minus_one[target == 255] = -1
    assert_same(base, feed(task_metrics("segmentation", 5, ignore_index=-1), logits, minus_one, [3]))
    assert_same(base, feed(task_metrics("segmentation", 5, ignore_index=(255, -1)), logits, minus_one, [3]))
    assert_same(base, feed(task_metrics("segmentation", 5), logits, target.to(torch.uint8), [3]))


def test_segmentation_label_predictions_and_bad_labels(seg_data):
    logits, target = seg_data
    assert_same(
        feed(task_metrics("segmentation", 5), logits, target, [3]),
        feed(task_metrics("segmentation", 5), logits.argmax(1), target, [3]),
    )
    bad = target.clone()
    bad[0, 0, 0] = 7  # neither a class nor ignored
    with pytest.raises((RuntimeError, ValueError)):
        task_metrics("segmentation", 5).update(logits, bad)
    with pytest.raises(ValueError, match="valid class id"):
        task_metrics("segmentation", 5, ignore_index=0)


# ----------------------------------------------------------------------------------------------------------
# change detection


@pytest.fixture
def cd_data():
    b, h, w = 4, 16, 16
    target = (torch.rand(b, h, w, generator=gen(10)) < 0.2).long()
    logits = torch.randn(b, 2, h, w, generator=gen(11))
    logits[:, 1] += 1.5 * target - 0.5
    target[torch.rand(b, h, w, generator=gen(12)) < 0.05] = 255
    return logits, target


def test_change_matches_sklearn(cd_data):
    logits, target = cd_data
    m = task_metrics("change", 2)
    out = feed(m, logits, target, [1, 3])
    y, p = target.numpy().ravel(), logits.argmax(1).numpy().ravel()
    y, p = y[y != 255], p[y != 255]
    assert out["precision"] == pytest.approx(skm.precision_score(y, p), **TOL)
    assert out["recall"] == pytest.approx(skm.recall_score(y, p), **TOL)
    assert out["f1"] == pytest.approx(skm.f1_score(y, p), **TOL)
    assert out["iou"] == pytest.approx(skm.jaccard_score(y, p), **TOL)
    assert out["overall_accuracy"] == pytest.approx(skm.accuracy_score(y, p), **TOL)
    assert out["kappa"] == pytest.approx(skm.cohen_kappa_score(y, p), **TOL)
    assert out["per_class_precision"] == pytest.approx(skm.precision_score(y, p, average=None).tolist(), **TOL)
    assert out["per_class_recall"] == pytest.approx(skm.recall_score(y, p, average=None).tolist(), **TOL)
    assert out["change_support"] == int(y.sum()) and out["num_pixels"] == len(y)
    np.testing.assert_array_equal(m.confusion_matrix(), skm.confusion_matrix(y, p))
    assert 0.1 < out["f1"] < 0.9


def test_change_probability_and_label_inputs_agree(cd_data):
    logits, target = cd_data
    base = feed(task_metrics("change"), logits, target, [4])
    change_prob = torch.softmax(logits, 1)[:, 1]
    assert_same(base, feed(task_metrics("change", inputs="probs"), change_prob, target, [4]))
    assert_same(base, feed(task_metrics("change"), change_prob.unsqueeze(1), target, [4]))
    assert_same(base, feed(task_metrics("change"), torch.log_softmax(logits, 1), target, [4]))  # LogSoftmax head
    assert_same(base, feed(task_metrics("change"), logits.argmax(1), target, [4]))
    logit_diff = logits[:, 1] - logits[:, 0]  # a single change logit: sigmoid(diff) == softmax change prob
    assert_same(base, feed(task_metrics("change", inputs="logits"), logit_diff, target, [4]))
    assert_same(base, feed(task_metrics("change"), logits, target, [3, 1]))  # streaming


def test_change_ignore_minus_one(cd_data):
    logits, target = cd_data
    minus_one = target.clone()
    minus_one[target == 255] = -1
    assert_same(
        feed(task_metrics("change"), logits, target, [4]),
        feed(task_metrics("change", ignore_index=-1), logits, minus_one, [4]),
    )


def test_change_no_change_ground_truth_is_well_defined():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[0, 0, :3] = 255
    all_right = torch.zeros(2, 8, 8, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings either
        out = feed(task_metrics("change"), all_right, target, [2])
    assert {k: out[k] for k in ("precision", "recall", "f1", "iou", "kappa")} == dict.fromkeys(
        ("precision", "recall", "f1", "iou", "kappa"), 0.0
    )
    assert out["overall_accuracy"] == 1.0
    assert out["change_support"] == 0 and out["num_pixels"] == 128 - 3
    assert out["per_class_precision"] == [1.0, 0.0] and out["per_class_recall"] == [1.0, 0.0]
    json.dumps(out, allow_nan=False)
    # false alarms on a no-change scene: precision 0 (defined), recall/f1 undefined -> 0, as scikit-learn
    false_alarm = all_right.clone()
    false_alarm[1, 4:, 4:] = 1
    out = feed(task_metrics("change"), false_alarm, target, [2])
    y, p = target.numpy().ravel(), false_alarm.numpy().ravel()
    y, p = y[y != 255], p[y != 255]
    assert out["precision"] == skm.precision_score(y, p, zero_division=0) == 0.0
    assert out["f1"] == skm.f1_score(y, p, zero_division=0) == 0.0
    assert out["overall_accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    # zero_division=nan: undefined values become None (for averaging per image while skipping them)
    out = feed(task_metrics("change", zero_division=float("nan")), all_right, target, [2])
    assert out["precision"] is None and out["recall"] is None and out["f1"] is None and out["kappa"] is None
    assert out["overall_accuracy"] == 1.0


def test_change_rejects_more_classes():
    with pytest.raises(ValueError, match="must be 2"):
        task_metrics("change", 3)


# ----------------------------------------------------------------------------------------------------------
# common interface


def test_factory_primary_reset_and_json(cls_data, ml_data, seg_data, cd_data):
    cases = {
        "classification": (10, cls_data),
        "multilabel": (7, ml_data),
        "segmentation": (5, seg_data),
        "change": (2, cd_data),
    }
    assert set(cases) == set(TASKS)
    for task, (c, (preds, target)) in cases.items():
        m = task_metrics(task, c).to("cpu")
        assert m.primary == PRIMARY_METRICS[task] and m.device.type == "cpu"
        with pytest.raises(RuntimeError, match="before any update"):
            m.compute()
        first = feed(m, preds, target, [preds.shape[0]])
        assert m.primary in first and isinstance(first[m.primary], float)
        assert all(k == k.lower() and " " not in k for k in first)
        json.dumps(first, allow_nan=False)  # NaN already rendered as None
        m.reset()
        m.update(preds[:1], target[:1])
        again = m.compute()
        assert_same(again, feed(task_metrics(task, c), preds[:1], target[:1], [1]))
    with pytest.raises(ValueError, match="task='detection'"):
        task_metrics("detection", 3)
    with pytest.raises(ValueError, match="num_classes is required"):
        task_metrics("segmentation")
