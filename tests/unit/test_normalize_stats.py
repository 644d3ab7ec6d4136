"""Streaming band statistics equal numpy on the concatenation; recipes on numpy and torch; JSON round trips."""

import json

import numpy as np
import pytest
import torch

from spectralgpt.data.normalize import (BIGEARTHNET_MEAN, BandStats, Clip2Sigma, MinMax, Recipe, ZScore,
                                        make_recipe)


def _chunks(seed=0, n=7):
    rng = np.random.default_rng(seed)
    return [rng.gamma(2.0, 900.0, size=(rng.integers(1, 5), 4, 9, 11)).astype(np.uint16) for _ in range(n)]


def test_one_pass_equals_numpy():
    chunks = _chunks()
    acc = BandStats(4, hist_range=(0, 16384), bins=2048)
    for c in chunks:
        acc.update(c)
    allx = np.concatenate([c.transpose(1, 0, 2, 3).reshape(4, -1) for c in chunks], axis=1).astype(np.float64)
    np.testing.assert_allclose(acc.mean, allx.mean(1), rtol=1e-12)
    np.testing.assert_allclose(acc.std, allx.std(1), rtol=1e-10)
    np.testing.assert_array_equal(acc.min, allx.min(1))
    np.testing.assert_array_equal(acc.max, allx.max(1))
    assert acc.count.tolist() == [allx.shape[1]] * 4
    # histogram percentiles within one 8-DN bin of numpy
    np.testing.assert_allclose(acc.percentile(50), np.percentile(allx, 50, axis=1), atol=8.01)


def test_merge_across_shards_equals_single_pass():
    chunks = _chunks(1, 9)
    single = BandStats(4, hist_range=(0, 16384), bins=2048)
    for c in chunks:
        single.update(c)
    parts = []
    for part in (chunks[:2], chunks[2:3], chunks[3:]):
        p = BandStats(4, hist_range=(0, 16384), bins=2048)
        for c in part:
            p.update(c)
        parts.append(BandStats.from_dict(json.loads(json.dumps(p.to_dict()))))  # as if from another process
    merged = BandStats.merged(parts)
    np.testing.assert_allclose(merged.mean, single.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.var, single.var, rtol=1e-10)
    np.testing.assert_array_equal(merged.hist, single.hist)
    np.testing.assert_array_equal(merged.count, single.count)


def test_ignore_value_and_mask():
    x = np.array([[[0, 10], [20, 0]], [[5, 5], [0, 7]]], np.int16)
    acc = BandStats(2).update(x, ignore_value=0)
    np.testing.assert_allclose(acc.mean, [15, 17 / 3])
    assert acc.count.tolist() == [2, 3]
    acc2 = BandStats(2).update(x, mask=np.array([[True, False], [True, True]]))
    np.testing.assert_allclose(acc2.mean, [20 / 3, 4])


def test_empty_band_and_bad_merge():
    acc = BandStats(2)
    assert np.isnan(acc.mean).all()
    d = acc.to_dict()
    assert BandStats.from_dict(d).count.tolist() == [0, 0]
    with pytest.raises(ValueError):
        acc.merge(BandStats(3))
    with pytest.raises(ValueError):
        acc.merge(BandStats(2, hist_range=(0, 10), bins=5))


def test_minmax_numpy_and_torch_agree():
    x = np.random.default_rng(0).integers(100, 5000, (2, 3, 8, 8)).astype(np.uint16)
    a = MinMax()(x)
    b = MinMax()(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert a.min() == 0 and np.isclose(a.max(), 1)
    assert MinMax()(np.full((1, 4, 4), 7, np.uint16)).max() == 0  # constant band: no division by zero


def test_zscore_and_clip2sigma_formulas():
    mean, std = [100.0, 200.0], [10.0, 20.0]
    x = np.array([[[100, 140]], [[120, 0]]], np.float32)  # (2, 1, 2)
    np.testing.assert_allclose(ZScore(mean, std)(x), [[[0, 4]], [[-4, -10]]])
    y = Clip2Sigma(mean, std)(x)
    np.testing.assert_allclose(y, [[[0.5, 1.0]], [[0.0, 0.0]]])
    yt = Clip2Sigma(mean, std)(torch.from_numpy(x))
    np.testing.assert_allclose(yt.numpy(), y)
    q = Clip2Sigma(mean, std, quantize=True)(np.array([[[101.0]], [[200.0]]], np.float32))
    np.testing.assert_allclose(q[:, 0, 0], [np.floor(0.525 * 255) / 255, np.floor(0.5 * 255) / 255], rtol=1e-6)
    with pytest.raises(ValueError, match="bands"):
        ZScore(mean, std)(np.zeros((3, 2, 2)))


def test_recipes_serialise_and_build_from_stats():
    for r in (MinMax(1e-12), ZScore([1, 2], [3, 4], bands=["B2", "B3"]), Clip2Sigma.bigearthnet_official()):
        d = json.loads(json.dumps(r.to_dict()))
        assert Recipe.from_dict(d) == r
    assert Clip2Sigma.bigearthnet_official().mean == BIGEARTHNET_MEAN
    acc = BandStats(2, bands=("B2", "B3")).update(np.arange(32, dtype=np.uint16).reshape(2, 4, 4))
    r = make_recipe("zscore", acc.to_dict())
    assert r.bands == ("B2", "B3") and np.allclose(r.mean, acc.mean)
    with pytest.raises(ValueError, match="unknown"):
        make_recipe("nope")
    with pytest.raises(ValueError, match="statistics"):
        make_recipe("clip2sigma")
