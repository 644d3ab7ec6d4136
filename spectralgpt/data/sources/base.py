"""What every dataset reader shares: a lazy, picklable, index-stable sequence of samples, splits, list files.

A reader's constructor only *lists* the dataset (directory listings, split files, CSVs); pixels, labels and JSON
are read in `__getitem__`, so a dataset object is cheap to pickle and a process pool can read disjoint index
ranges in parallel. Problems found while listing (a split-list entry escaping the root, a duplicate id, a file in
an unknown class folder) are recorded on the entry and raised as `BadSample` when that index is read, so the
index stays stable and `validate.scan` can quarantine them like any unreadable file.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from dataclasses import dataclass, field

from spectralgpt.bands import PRETRAIN_BANDS, canonical_list
import numpy as np

from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.io import s2offset

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}

#: options every reader takes: ``offset`` harmonises Sentinel-2 baseline 04.00 pixels ("auto": from the SAFE
#: product's metadata when the sample lies in one; an integer for bare GeoTIFFs; see spectralgpt.io.s2offset)
COMMON_OPTIONS: dict = {"offset": "auto"}

#: Fractions of the deterministic hash split used when a dataset ships no split files: train / val / test.
HASH_SPLIT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)


def normalize_split(split: str | None) -> str | None:
    """None (all samples) or one of train/val/test ('valid' and 'validation' mean 'val')."""
    if split is None:
        return None
    s = _SPLIT_ALIASES.get(str(split).strip().lower())
    if s is None:
        raise ValueError(f"split={split!r} is not supported; allowed: None, train, val (or valid), test")
    return s


def hash_split(sample_id: str, fractions: tuple[float, float, float] = HASH_SPLIT_FRACTIONS) -> str:
    """Deterministic split of an id from a stable hash (SHA-1 of the UTF-8 id), independent of the machine,
    the Python hash seed and the other ids: `fractions` of ids go to train / val / test (default 80/10/10)."""
    h = int.from_bytes(hashlib.sha1(sample_id.encode("utf-8")).digest()[:8], "big") / 2.0**64
    if h < fractions[0]:
        return "train"
    if h < fractions[0] + fractions[1]:
        return "val"
    return "test"


def resolve_in_root(root: str, rel: str) -> tuple[str, tuple[str, str] | None]:
    """Join a list-file entry onto the dataset root; (path, error) where error is set when it escapes the root.

    The check is lexical (normpath, not realpath) on purpose: a dataset whose files are symlinks into a DVC cache
    is fine; an entry such as '../x.tif' or '/etc/x.tif' is not.
    """
    rel = rel.strip()
    path = os.path.normpath(os.path.join(root, rel))
    if os.path.isabs(rel) or os.path.commonpath([root, path]) != root:
        return path, (Reason.OUTSIDE_ROOT, f"list entry {rel!r} points outside the dataset root {root}")
    return path, None


class EmptyDatasetError(ValueError):
    """A dataset root in which a reader finds no sample at all: almost always the wrong folder or another
    layout, which would otherwise surface much later as an empty corpus."""


def read_list(path: str) -> list[str]:
    """Non-empty, stripped lines of a list file ('#' starts a comment line)."""
    with open(path, encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]


@dataclass
class Entry:
    """One listed sample: its id, the file/folder it lives in, reader-specific info, and a deferred error."""

    id: str
    path: str
    split: str | None = None
    info: dict = field(default_factory=dict)
    error: tuple[str, str] | None = None


class SourceDataset:
    """Base class: subclasses implement `_index()` (list entries) and `_read(entry)` (read one sample).

    `ds[i]` reads sample i from disk; `len(ds)`; `ds.ids` (sorted, deterministic); iterating yields samples
    (and raises `BadSample` at a bad one: use `spectralgpt.data.validate.scan` to skip and report them).
    """

    kind: str = ""
    #: allowed keyword options and their defaults
    OPTIONS: dict = {}
    #: label index -> class name (None for unlabelled sources)
    CLASS_NAMES: tuple[str, ...] | None = None
    #: the layout the reader expects, one line (quoted in the error for a root with no samples)
    LAYOUT: str = ""

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self.CLASS_NAMES

    @staticmethod
    def _label_mask(path: str, shape) -> np.ndarray:
        """The label raster at `path`, which must match the image's (H, W), else BadSample."""
        from spectralgpt.io import raster

        try:
            values, _, _ = raster.read_mask(path, allow_drivers=("GTiff",))
        except BadSample as b:
            raise BadSample(Reason.BAD_LABEL, f"unreadable label: {b}", path) from b
        if values.shape != tuple(shape):
            raise BadSample(Reason.WRONG_SIZE, f"label {path} is {values.shape}, image {tuple(shape)}", path)
        return values

    @staticmethod
    def _sample(e: "Entry", r, label=None, image2=None, **meta) -> Sample:
        """The Sample of entry `e` read as raster `r` (its array, band names and georeference)."""
        return Sample(id=e.id, image=r.array, bands=r.bands, label=label, image2=image2, crs=r.crs,
                      transform=r.transform, source=e.path, split=e.split, meta=meta)

    def __init__(self, root, split=None, bands=PRETRAIN_BANDS, **options):
        unknown = sorted(set(options) - set(self.OPTIONS) - set(COMMON_OPTIONS))
        if unknown:
            allowed = ", ".join(sorted({**self.OPTIONS, **COMMON_OPTIONS}))
            raise TypeError(f"{self.kind}: unknown option(s) {', '.join(unknown)}; allowed: {allowed}")
        self.root = os.path.abspath(os.fspath(root))
        if not os.path.exists(self.root):
            raise FileNotFoundError(f"{self.kind}: dataset root {self.root} does not exist")
        self.split = normalize_split(split)
        self.bands = None if bands is None else canonical_list(bands)  # None: every band, source order
        self.options = {**COMMON_OPTIONS, **self.OPTIONS, **options}
        self.options["offset"] = s2offset.check_option(self.options["offset"])
        entries = sorted(self._index(), key=lambda e: (e.id, e.path))
        if not entries:
            self._refuse_empty()
        seen: dict[str, str] = {}
        for e in entries:  # the first error-free entry of an id keeps it; later ones are duplicates
            if e.error is not None:
                continue
            if e.id in seen:
                e.error = (Reason.DUPLICATE_ID, f"id {e.id!r} occurs more than once (first: {seen[e.id]})")
            else:
                seen[e.id] = e.path
        self._entries: list[Entry] = entries
        log.debug("%s: %d samples listed under %s (split=%s)", self.kind, len(entries), self.root, self.split)

    def _refuse_empty(self) -> None:
        """Raise EmptyDatasetError when the root holds no sample of any split (a split alone may be empty)."""
        if self.split is not None:
            split, self.split = self.split, None
            try:
                total = len(self._index())
            finally:
                self.split = split
            if total:
                log.warning("%s: no %s samples under %s (%d in other splits)", self.kind, split, self.root, total)
                return
        raise EmptyDatasetError(f"{self.kind}: no samples found under {self.root}; expected layout: {self.LAYOUT}")

    # -- to implement ---------------------------------------------------------------------------------
    def _index(self) -> list[Entry]:
        raise NotImplementedError

    def _read(self, entry: Entry) -> Sample:
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------------------
    def _split_of(self, sample_id: str) -> str:
        return hash_split(sample_id)

    def _keep(self, split: str | None) -> bool:
        return self.split is None or split == self.split

    # -- the sequence protocol ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i) -> Sample:
        if not isinstance(i, (int,)) and not hasattr(i, "__index__"):
            raise TypeError(f"{type(self).__name__} indices must be integers, not {type(i).__name__}")
        i = i.__index__()
        if i < 0:
            i += len(self._entries)
        if not 0 <= i < len(self._entries):
            raise IndexError(f"index {i} out of range for {len(self._entries)} samples")
        e = self._entries[i]
        if e.error is not None:
            raise BadSample(e.error[0], e.error[1], e.path, e.id)
        try:
            sample = self._read(e)
        except BadSample as b:
            if not b.sample_id:
                b.sample_id = e.id
            if not b.source:
                b.source = e.path
            raise
        return self._harmonize(sample)

    def _harmonize(self, sample: Sample) -> Sample:
        """Sentinel-2 baseline >= 04.00 pixels back on the pre-2022 scale (option ``offset``, see
        `spectralgpt.io.s2offset`); ``meta['dn_offset']`` records what was subtracted."""
        try:
            applied = s2offset.resolve(sample.source, sample.bands, self.options["offset"], stop=self.root)
        except (OSError, ValueError) as ex:
            raise BadSample(Reason.UNREADABLE, f"product metadata: {ex}", sample.source, sample.id) from ex
        if applied["offsets"]:
            sample.image = s2offset.harmonize(sample.image, sample.bands, applied["offsets"])
            if sample.image2 is not None:
                sample.image2 = s2offset.harmonize(sample.image2, sample.bands, applied["offsets"])
            sample.meta["dn_offset"] = s2offset.summary(applied)
            sample.meta["dn_offset_source"] = applied["metadata"] or applied["source"]
        return sample

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self._entries]

    @property
    def splits(self) -> list[str | None]:
        """The split of every listed sample (known from the listing, like the ids; None without a split)."""
        return [e.split for e in self._entries]

    def sample_id(self, i: int) -> str:
        """Sample i's id, without reading it (``ids[i]`` without building the whole list)."""
        return self._entries[i].id

    def source(self, i: int) -> str:
        """The file or folder sample i is read from (for reports), without reading it."""
        return self._entries[i].path

    def subset(self, indices) -> "SourceDataset":
        """This reader with only the listed entries `indices`, in that order (sample k of the copy reads as sample
        ``indices[k]`` of this one): what a worker is sent to read some samples without the whole listing."""
        part = copy.copy(self)
        part._entries = [self._entries[i] for i in indices]
        return part

    #: sample files whose raster header `check` opens (the one file a single-file reader reads first)
    CHECK_HEADERS: tuple[str, ...] = (".tif", ".tiff")

    def check(self, i: int) -> None:
        """The cheap checks of sample i, without decoding its pixels (what ingest runs on every listed sample; the
        pixel checks run where the sample is decoded, in preprocessing): a problem found while listing (outside the
        root, duplicate id, unknown class folder), and for a sample stored as one GeoTIFF its existence and header
        (file signature, a readable directory, the declared size under the cap). Raises the same `BadSample` that
        reading the sample would raise first, so a sample refused here is reported exactly as a full read would."""
        from spectralgpt.io import raster

        e = self._entries[i]
        if e.error is not None:
            raise BadSample(e.error[0], e.error[1], e.path, e.id)
        if e.path.lower().endswith(self.CHECK_HEADERS):
            try:
                with raster.open_raster(e.path):
                    pass
            except BadSample as b:
                b.sample_id = b.sample_id or e.id
                b.source = b.source or e.path
                raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={self.root!r}, split={self.split!r}, n={len(self)}, bands={self.bands})"
