"""The dense evaluation's sample panels draw a true-colour composite from any sensor's bands: B4/B3/B2 by name,
else the bands that stand for them by wavelength (an HLS corpus has no band named B4)."""

import numpy as np

from spectralgpt.bands import HLS_BANDS, PRETRAIN_BANDS
from spectralgpt.evaluation.report import _true_colour


def test_true_colour_takes_the_bands_that_stand_for_b4_b3_b2():
    rng = np.random.default_rng(0)
    s2 = rng.random((12, 8, 8))
    hls = s2[[PRETRAIN_BANDS.index(b) for b in ("B2", "B3", "B4", "B8A", "B11", "B12")]]  # HLS_BANDS' order
    assert np.array_equal(_true_colour(hls, HLS_BANDS), _true_colour(s2, PRETRAIN_BANDS))
    grey = _true_colour(rng.random((1, 8, 8)), ["OLI:B8"])  # panchromatic: nothing stands for red
    assert grey.shape == (8, 8, 3) and np.array_equal(grey[..., 0], grey[..., 2])
