"""Task datasets over shards: shapes, ranges, label handling and image/mask alignment under augmentation."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from corpus_helpers import ArraySource  # noqa: E402

from spectralgpt.bands import PRETRAIN_BANDS  # noqa: E402
from spectralgpt.data.datasets import (ChangeDetectionDataset, ClassificationDataset, PretrainDataset,  # noqa: E402
                                       SegmentationDataset, center_boxes, crop_resize, make_loader, rrc_boxes)
from spectralgpt.data.preprocess import preprocess  # noqa: E402


def _corpus(tmp_path, name, **kw):
    opts = dict(size=kw.pop("size", 32), shard_size=4, workers=1, fsync=False)
    preprocess(ArraySource(**kw), tmp_path / name, **opts)
    return tmp_path / name


def test_rrc_boxes_are_valid():
    torch.manual_seed(0)
    top, left, h, w = rrc_boxes(2000, 40, 30)
    assert (h >= 1).all() and (w >= 1).all() and (top + h <= 40).all() and (left + w <= 30).all()
    area = h * w / (40 * 30)
    assert area.min() >= 0.19 and area.max() <= 1.0 and area.mean() > 0.4


def test_crop_resize_identity_and_flip():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    full = (torch.zeros(2), torch.zeros(2), torch.full((2,), 8.0), torch.full((2,), 8.0))
    torch.testing.assert_close(crop_resize(x, full, 8), x)
    flipped = crop_resize(x, full, 8, hflip=torch.tensor([True, False]))
    torch.testing.assert_close(flipped[0], x[0].flip(-1))
    torch.testing.assert_close(flipped[1], x[1])
    half = (torch.tensor([2.0, 0]), torch.tensor([4.0, 0]), torch.full((2,), 4.0), torch.full((2,), 4.0))
    torch.testing.assert_close(crop_resize(x, half, 4, mode="nearest")[0], x[0, :, 2:6, 4:8])
    top, left, h, w = center_boxes(1, 128, 128, 128)
    assert float(h[0]) == pytest.approx(128 * 128 / 146)


def test_pretrain_dataset(tmp_path):
    root = _corpus(tmp_path, "pre", n=9, bands=PRETRAIN_BANDS[::-1], size=48)  # stored in another order
    ds = PretrainDataset(root, size=32)
    assert ds.bands == PRETRAIN_BANDS
    one = ds[3]["image"]
    assert one.shape == (12, 32, 32) and one.dtype == torch.float32
    batch = ds[[0, 1, 2]]["image"]
    assert batch.shape == (3, 12, 32, 32)
    ev = PretrainDataset(root, size=32, train=False, interpolation="bilinear")
    a, b = ev[4]["image"], ev[4]["image"]
    torch.testing.assert_close(a, b)  # eval is deterministic
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    # the selected band order is honoured: band 0 of the output is B1 (stored last)
    stored = np.asarray(ds.corpus[4]["image"][-1], np.float32)
    ref = (stored - stored.min()) / (stored.max() - stored.min() + 1e-10)
    full = PretrainDataset(root, size=48, train=False, interpolation="bilinear")
    full_box = full[4]["image"][0]  # 48/0.875 resize + centre crop: compare the statistics loosely
    assert abs(float(full_box.mean()) - float(ref.mean())) < 0.05


def test_classification_single_and_multi_label(tmp_path):
    ds = ClassificationDataset(_corpus(tmp_path, "cls", n=8, label="class"), size=32, recipe="zscore")
    b = ds[[0, 1, 2, 3]]
    assert b["label"].tolist() == [0, 1, 2, 3] and b["label"].dtype == torch.int64
    assert abs(float(b["image"].mean())) < 0.5  # z-scored with the corpus statistics
    ml = ClassificationDataset(_corpus(tmp_path, "ml", n=6, label="multilabel"), size=32, recipe="clip2sigma",
                               interpolation="bilinear")  # bicubic may overshoot [0, 1], as in the original
    y = ml[[2, 3]]["label"]
    assert y.dtype == torch.float32 and y.shape == (2, 5)
    np.testing.assert_array_equal(y[0].numpy(), ArraySource(6, label="multilabel")[2].label)
    x = ml[2]["image"]
    assert 0 <= float(x.min()) and float(x.max()) <= 1.0 + 1e-3
    with pytest.raises(ValueError, match="label_kind"):
        ClassificationDataset(_corpus(tmp_path, "none", n=2), size=32)


def test_segmentation_alignment(tmp_path):
    root = _corpus(tmp_path, "seg", n=8, label="mask", size=40)
    torch.manual_seed(1)
    ds = SegmentationDataset(root, size=24, recipe=None)  # raw values: mask == image band 0 % 7 exactly
    for _ in range(4):
        b = ds[list(range(8))]
        assert b["image"].shape == (8, 3, 24, 24) and b["mask"].shape == (8, 24, 24)
        torch.testing.assert_close(b["mask"], (b["image"][:, 0].long() % 7))
    # the augmentations do happen: some outputs are rotated/flipped versions of the centre-free crops
    ev = SegmentationDataset(root, size=24, train=False, recipe=None)
    torch.testing.assert_close(ev[0]["mask"], ev[0]["image"][0].long() % 7)
    remap = SegmentationDataset(root, size=24, recipe=None, label_map={0: 255, 3: 1})
    m = remap[[0, 1]]
    raw = m["image"][:, 0].long() % 7
    expect = torch.where(raw == 0, 255, torch.where(raw == 3, 1, raw))
    torch.testing.assert_close(m["mask"], expect)


def test_change_detection_alignment(tmp_path):
    root = _corpus(tmp_path, "cd", n=6, label="mask", image2=True, size=40)
    torch.manual_seed(2)
    ds = ChangeDetectionDataset(root, size=32, recipe=None)
    b = ds[list(range(6))]
    torch.testing.assert_close(b["mask"], b["image"][:, 0].long() % 7)
    # image2 was built as image[::-1] // 2: same geometry on both dates
    torch.testing.assert_close(b["image2"], torch.floor(b["image"].flip(1) / 2))
    normed = ChangeDetectionDataset(root, size=32)[0]
    for k in ("image", "image2"):
        assert 0 <= float(normed[k].min()) and float(normed[k].max()) <= 1


def test_loaders(tmp_path):
    root = _corpus(tmp_path, "ld", n=10, label="mask", size=32)
    torch.manual_seed(0)
    dl = make_loader(SegmentationDataset(root, size=16), batch_size=4, num_workers=0)
    sizes = [b["image"].shape[0] for b in dl]
    assert sizes == [4, 4, 2]
    plain = torch.utils.data.DataLoader(SegmentationDataset(root, size=16), batch_size=3)  # via __getitems__
    b = next(iter(plain))
    assert b["image"].shape == (3, 3, 16, 16) and b["mask"].shape == (3, 16, 16)


@pytest.mark.parametrize("workers", [0, 1])
def test_deferred_batches_finish_to_the_same_images(tmp_path, workers):
    """prepare() in the loader + finish() after the copy gives what batch() gives in one go; the loader (a
    thread per worker) moves the stored uint16 pixels, not float32."""
    root = _corpus(tmp_path, "df", n=10, label="class", size=40)
    ds = ClassificationDataset(root, size=32)
    prepared = list(make_loader(ds, batch_size=4, shuffle=False, num_workers=workers, defer=True))
    assert [p["raw"].shape[0] for p in prepared] == [4, 4, 2]
    assert prepared[0]["raw"].dtype == torch.uint16 and prepared[0]["raw"].shape[-1] == 40
    torch.manual_seed(5)
    whole = ds.batch([0, 1, 2, 3])
    torch.manual_seed(5)
    done = ds.finish(ds.prepare([0, 1, 2, 3]))
    assert done.keys() == whole.keys() == {"image", "label", "index"}
    for k in whole:
        torch.testing.assert_close(done[k], whole[k], rtol=0, atol=0)
    finished = ds.finish(prepared[0])
    assert finished["image"].shape == (4, len(ds.bands), 32, 32) and finished["image"].dtype == torch.float32
    with pytest.raises(TypeError, match="prepare/finish"):
        make_loader(SegmentationDataset(_corpus(tmp_path, "sg", n=4, label="mask", size=32), size=16), 2,
                    defer=True)


def test_thread_loader_keeps_order_and_stops_cleanly():
    import threading
    import time

    from spectralgpt.data.prefetch import ThreadLoader

    def slow(k):
        time.sleep(0.01 * (k % 3))  # finishing out of order
        return {"k": torch.tensor([k])}

    loader = ThreadLoader(slow, range(20), threads=3, depth=4)
    assert len(loader) == 20
    assert [int(b["k"]) for b in loader] == list(range(20))
    assert [int(b["k"]) for b in loader] == list(range(20))  # iterable again, like a DataLoader
    for b in loader:  # an abandoned iteration leaves no loader thread behind
        if int(b["k"]) == 2:
            break
    time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name.startswith("loader")]

    def bad(k):
        if k == 5:
            raise ValueError("shard 5 is unreadable")
        return k

    with pytest.raises(ValueError, match="shard 5"):
        list(ThreadLoader(bad, range(10), threads=2))
    with pytest.raises(ValueError, match="threads"):
        ThreadLoader(bad, range(3), threads=0)
