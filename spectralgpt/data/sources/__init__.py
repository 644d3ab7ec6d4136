"""Dataset readers, one module per public dataset layout, behind `load_dataset(kind, root, ...)`.

Every reader returns a lazy, picklable, index-stable sequence of `Sample` records (see `base.SourceDataset`);
each module's docstring documents its layout, band order, labels and splits.
"""

from __future__ import annotations

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.data.sources.base import HASH_SPLIT_FRACTIONS, SourceDataset, hash_split
from spectralgpt.data.sources.bigearthnet import BigEarthNet
from spectralgpt.data.sources.eurosat import EuroSAT
from spectralgpt.data.sources.fmow import FMoWSentinel
from spectralgpt.data.sources.folder import Folder
from spectralgpt.data.sources.geobench import GeoBench
from spectralgpt.data.sources.hls_burn_scars import HLSBurnScars
from spectralgpt.data.sources.oscd import OSCD
from spectralgpt.data.sources.segmunich import SegMunich
from spectralgpt.data.sources.sen1floods11 import Sen1Floods11
from spectralgpt.data.sources.ucmerced import UCMerced

#: kind -> reader class
DATASET_KINDS: dict[str, type[SourceDataset]] = {
    c.kind: c for c in (EuroSAT, BigEarthNet, OSCD, Sen1Floods11, SegMunich, FMoWSentinel, Folder, HLSBurnScars,
                        GeoBench, UCMerced)
}

__all__ = ["DATASET_KINDS", "HASH_SPLIT_FRACTIONS", "SourceDataset", "default_bands", "hash_split", "load_dataset", *(
    c.__name__ for c in DATASET_KINDS.values())]


def _reader(kind: str) -> type[SourceDataset]:
    try:
        return DATASET_KINDS[str(kind).lower()]
    except KeyError:
        raise ValueError(f"unknown dataset kind {kind!r}; allowed: {', '.join(DATASET_KINDS)}") from None


def default_bands(kind: str) -> tuple[str, ...]:
    """The bands a reader gives by default: its own band set (`DEFAULT_BANDS`: the 6 HLS bands of
    hls_burn_scars), else the 12 pretraining bands (the Sentinel-2 layouts)."""
    return tuple(getattr(_reader(kind), "DEFAULT_BANDS", PRETRAIN_BANDS))


def load_dataset(kind: str, root, split: str | None = None, bands="default", **options) -> SourceDataset:
    """A lazy sequence of `Sample`s of dataset `kind` under `root`.

    kind: one of eurosat, bigearthnet, oscd, sen1floods11, segmunich, fmow, folder, hls_burn_scars, geobench,
        ucmerced.
    split: None (all), 'train', 'val' ('valid'), 'test'. bands: output band order, selected by name ("default":
        `default_bands(kind)`; None: every band the source has, in the file's order; ESA order for per-band
        layouts).
    options: reader-specific (see each module), e.g. fill_missing='mean' (segmunich), csv=... (fmow),
        band_order=[...] (folder, segmunich), resampling='cubic' (bigearthnet, oscd).
    """
    cls = _reader(kind)
    return cls(root, split=split, bands=default_bands(kind) if isinstance(bands, str) and bands == "default" else bands,
               **options)
