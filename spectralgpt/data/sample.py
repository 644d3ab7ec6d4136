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

    def digest(self) -> str:
        """SHA-256 of everything preprocessing takes from this sample: pixels (both dates), label, band names,
        id, split and georeference. Two samples with the same digest give the same stored items."""
        from spectralgpt.io.digest import digest_arrays

        transform = tuple(self.transform)[:6] if self.transform is not None else None
        crs = None if self.crs is None else (self.crs.to_string() if hasattr(self.crs, "to_string") else str(self.crs))
        return digest_arrays({"image": self.image, "image2": self.image2, "label": self.label},
                             {"id": self.id, "split": self.split, "bands": list(self.bands), "crs": crs,
                              "transform": transform})


class BadSample(ValueError):
    """A sample that cannot be used; `reason` is a short machine-readable code, the message says why."""

    def __init__(self, reason: str, message: str, source: str = "", sample_id: str = ""):
        super().__init__(f"{reason}: {message}" + (f" ({source})" if source else ""))
        self.reason = reason
        self.message = message
        self.source = source
        self.sample_id = sample_id

    def __reduce__(self):  # picklable with its fields (a process pool or a Dask worker sends it back as it is)
        return type(self), (self.reason, self.message, self.source, self.sample_id)


class Reason:
    """The reason codes a `BadSample` carries (one per kind of problem; the quarantine report counts them)."""

    TRUNCATED = "truncated"  # a GeoTIFF that starts like one but cannot be read to the end (truncated/corrupt)
    NOT_GEOTIFF = "not_geotiff"  # not a (Geo)TIFF at all: a text file, an HTML error page, a PNG named .tif
    UNREADABLE = "unreadable"  # any other I/O failure (permissions, a broken archive, an unexpected error)
    MISSING_FILE = "missing_file"  # a listed file (or a label file) does not exist
    MISSING_BANDS = "missing_bands"  # a requested band is absent, or band names cannot be determined
    WRONG_SIZE = "wrong_size"  # unexpected height/width, or image/label/second-date shapes disagree
    WRONG_DTYPE = "wrong_dtype"  # unexpected pixel data type
    NAN_INF = "nan_inf"  # NaN or infinite pixel values
    ALL_NODATA = "all_nodata"  # every pixel is the nodata value
    CONSTANT = "constant"  # every band is spatially constant (no information)
    BAD_LABEL = "bad_label"  # the label cannot be read or parsed (bad JSON, unreadable mask, bad CSV field)
    UNKNOWN_LABEL = "unknown_label"  # a class name / mask value outside the dataset's nomenclature
    DUPLICATE_ID = "duplicate_id"  # the same sample id occurs twice
    OUTSIDE_ROOT = "outside_root"  # a list/CSV entry points outside the dataset root (e.g. '../')

    ALL: tuple[str, ...] = (
        TRUNCATED, NOT_GEOTIFF, UNREADABLE, MISSING_FILE, MISSING_BANDS, WRONG_SIZE, WRONG_DTYPE, NAN_INF,
        ALL_NODATA, CONSTANT, BAD_LABEL, UNKNOWN_LABEL, DUPLICATE_ID, OUTSIDE_ROOT,
    )
