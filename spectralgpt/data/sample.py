"""The uniform sample record every dataset reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Sample:
    """One image, patch or (for change detection) one bi-temporal city/scene.

    image:  (C, H, W) array in the requested band order, on the 10 m grid, native dtype (uint16/int16/float).
    bands:  band names of `image` (and `image2`), e.g. PRETRAIN_BANDS.
    label:  class index (single-label), multi-hot float32 vector (multi-label), (H, W) mask (segmentation /
            change), or None (unlabelled pretraining data).
    image2: second date for change detection, same shape/grid as `image`; else None.
    crs, transform: georeference of `image` (rasterio CRS and affine.Affine), None when the source has none.
    source: the file or folder it was read from.
    """

    id: str
    image: np.ndarray
    bands: tuple[str, ...]
    label: Any = None
    image2: np.ndarray | None = None
    crs: Any = None
    transform: Any = None
    source: str = ""
    split: str | None = None
    meta: dict = field(default_factory=dict)


class BadSample(ValueError):
    """A sample that cannot be used; `reason` is a short machine-readable code, the message says why."""

    def __init__(self, reason: str, message: str, source: str = "", sample_id: str = ""):
        super().__init__(f"{reason}: {message}" + (f" ({source})" if source else ""))
        self.reason = reason
        self.source = source
        self.sample_id = sample_id
