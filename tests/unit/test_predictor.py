"""Predictor: preprocessing by band name and recipe; bf16 autocast stays close to fp32."""

import numpy as np
import pytest
import torch

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.inference import Predictor
from spectralgpt.inference.predictor import resolve_precision
from spectralgpt.models import create_model

META = {"normalization": {"name": "minmax", "eps": 1e-10}, "extra": {"task": "segmentation"}}


def predictor(precision="fp32"):
    torch.manual_seed(0)
    return Predictor(create_model("seg_vit_tiny_patch8_64", num_classes=4), META, precision=precision)


def test_band_names_select_and_reorder():
    raw = np.random.default_rng(0).integers(0, 10_000, (2, 12, 64, 64)).astype(np.uint16)
    p = predictor()
    reversed_bands = list(reversed(PRETRAIN_BANDS))
    np.testing.assert_allclose(p.predict(raw[:, ::-1], bands=reversed_bands), p.predict(raw), atol=1e-6)
    with pytest.raises(KeyError, match="B8A"):
        p.predict(raw[:, :11], bands=[b for b in PRETRAIN_BANDS if b != "B8A"])
    with pytest.raises(ValueError, match="NaN"):
        p.predict(np.full((1, 12, 64, 64), np.nan, np.float32))


def test_bf16_probabilities_close_to_fp32():
    raw = np.random.default_rng(1).integers(0, 10_000, (2, 12, 64, 64)).astype(np.float32)
    exact, fast = predictor().predict(raw), predictor("bf16").predict(raw)
    assert fast.dtype == np.float32 and np.abs(fast - exact).max() < 0.05
    assert resolve_precision("fp32", torch.device("cpu")) is None
    assert resolve_precision("auto", torch.device("cpu")) in (None, torch.bfloat16)
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", torch.device("cpu"))
