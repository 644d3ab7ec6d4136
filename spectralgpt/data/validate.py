"""Input validation: per-sample checks, the quarantine report, `precheck` and `scan`.

At corpus scale each sample is decoded once: the ingest stage runs only `precheck` (the cheap checks a dataset's
`check(i)` makes without decoding: problems found while listing, a one-file sample's existence and raster header),
and the pixel checks (`check_sample`) run in the preprocessing worker that decodes the sample and writes its shard
(`spectralgpt.data.preprocess`). `scan` does both in one pass, for a dataset read without preprocessing it.

Every problem has one reason code (`spectralgpt.data.sample.Reason`):

=================  =========================================================================================
reason             detected by
=================  =========================================================================================
truncated          the reader: a file with a TIFF header whose directory or pixels cannot be read; empty file
not_geotiff        the reader: a file that is not a TIFF (text, HTML, PNG named .tif)
unreadable         the reader / scan: any other I/O failure or unexpected error
missing_file       the reader: a listed image, band folder or label file does not exist
missing_bands      the reader: requested band absent / band names unknown; `check_sample(bands=...)`
wrong_size         `check_sample(size=...)`; image/label/second-date shapes disagree (reader or check)
wrong_dtype        `check_sample(dtype=...)`
nan_inf            `check_sample`: a NaN or infinite pixel (float images)
all_nodata         `check_sample`: every pixel equals the nodata value (the file's, else 0)
constant           `check_sample`: every band is spatially constant
bad_label          the reader: unparseable label json / mask / csv field; `check_sample`: non-0/1 multi-hot
unknown_label      the reader: a class name or mask value outside the nomenclature
duplicate_id       the reader (listing) and `scan`: an id seen before
outside_root       the reader: a split-list / CSV entry that escapes the dataset root ('../', absolute paths)
=================  =========================================================================================
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from spectralgpt.bands import canonical_list
from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.io.atomic import atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["Quarantine", "QuarantineError", "QuarantineRecord", "check_sample", "precheck", "scan"]


# ------------------------------------------------------------------------------------------ checks


def _dtypes(dtype) -> tuple[np.dtype, ...]:
    if isinstance(dtype, (list, tuple, set, frozenset)):
        return tuple(np.dtype(d) for d in dtype)
    return (np.dtype(dtype),)


def check_sample(
    sample: Sample,
    bands=None,
    size: int | tuple[int, int] | None = None,
    dtype=None,
    nodata: float | None = None,
) -> Sample:
    """Raise `BadSample` with the matching reason if `sample` is unusable; return it unchanged otherwise.

    bands: the exact band order expected (`missing_bands` otherwise).
    size: expected (H, W) or H for square images (`wrong_size`).
    dtype: expected pixel dtype, or a tuple of accepted dtypes (`wrong_dtype`).
    nodata: the no-data value for the all-nodata test; default the sample's ``meta['nodata']``, else 0 (the
        Sentinel-2 product no-data value).
    Always checked: (C, H, W) shape consistent with `sample.bands`, image2 and mask-label shapes, NaN/inf,
    all-nodata, constant, multi-hot labels in {0, 1}.
    """
    sid, src = sample.id, sample.source

    def bad(reason, msg):
        raise BadSample(reason, msg, src, sid)

    img = sample.image
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[0] != len(sample.bands):
        shape = getattr(img, "shape", None)
        bad(Reason.WRONG_SIZE, f"image shape {shape} is not (C={len(sample.bands)}, H, W)")
    if bands is not None:
        want = canonical_list(bands)
        if tuple(sample.bands) != want:
            missing = [b for b in want if b not in sample.bands]
            what = f"missing {', '.join(missing)}" if missing else "different order or extra bands"
            bad(Reason.MISSING_BANDS, f"bands {list(sample.bands)} != expected {list(want)} ({what})")
    if size is not None:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(img.shape[-2:]) != hw:
            bad(Reason.WRONG_SIZE, f"image is {img.shape[-2]}x{img.shape[-1]}, expected {hw[0]}x{hw[1]}")
    if sample.image2 is not None and sample.image2.shape != img.shape:
        bad(Reason.WRONG_SIZE, f"second date shape {sample.image2.shape} != image shape {img.shape}")
    for name, a in (("image", img), ("image2", sample.image2)):
        if a is not None and np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            n = int((~np.isfinite(a)).sum())
            bad(Reason.NAN_INF, f"{name} has {n} NaN/inf value(s)")
    if dtype is not None:
        allowed = _dtypes(dtype)
        if img.dtype not in allowed:
            bad(Reason.WRONG_DTYPE, f"dtype {img.dtype}, expected {' or '.join(str(d) for d in allowed)}")
    nd = nodata if nodata is not None else sample.meta.get("nodata")
    nd = 0 if nd is None else nd
    if img.size and (np.isnan(img).all() if np.isnan(nd) else (img == nd).all()):
        bad(Reason.ALL_NODATA, f"every pixel equals the nodata value {nd}")
    if img.size and all(band.min() == band.max() for band in img):
        values = [band.flat[0].item() for band in img[:4]]
        bad(Reason.CONSTANT, f"every band is spatially constant (first values {values})")
    _check_label(sample, bad)
    return sample


def _check_label(sample: Sample, bad) -> None:
    lab = sample.label
    if isinstance(lab, np.ndarray):
        if lab.ndim == 2 and lab.shape != sample.image.shape[-2:]:
            bad(Reason.WRONG_SIZE, f"label mask {lab.shape} != image {sample.image.shape[-2:]}")
        if lab.ndim == 1 and not np.isin(lab, (0, 1)).all():
            bad(Reason.BAD_LABEL, "multi-hot label has values other than 0/1")
        if np.issubdtype(lab.dtype, np.floating) and not np.isfinite(lab).all():
            bad(Reason.BAD_LABEL, "label has NaN/inf values")


# -------------------------------------------------------------------------------------- quarantine


@dataclass
class QuarantineRecord:
    id: str
    path: str
    reason: str
    message: str


class QuarantineError(RuntimeError):
    """Too many bad samples; `.quarantine` is the report."""

    def __init__(self, message: str, quarantine: Quarantine):
        super().__init__(message)
        self.quarantine = quarantine


class Quarantine:
    """The bad samples of one scan: (id, path, reason, message) records, counts by reason, reports."""

    FIELDS = ("id", "path", "reason", "message")

    def __init__(self, total: int = 0, name: str = ""):
        self.records: list[QuarantineRecord] = []
        self.total = total  # samples examined (for the bad fraction)
        self.name = name
        self.path: str | None = None  # last report written

    def add(self, id: str, path: str, reason: str, message: str) -> None:
        if reason not in Reason.ALL:
            log.debug("quarantine: non-standard reason %r for %s", reason, id)
        self.records.append(QuarantineRecord(str(id), str(path), str(reason), str(message)))
        log.warning("quarantined %s (%s): %s", id, reason, message)

    def add_error(self, exc: BadSample, id: str = "", path: str = "") -> None:
        self.add(exc.sample_id or id, exc.source or path, exc.reason, str(exc))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.reason for r in self.records).items()))

    @property
    def bad_fraction(self) -> float:
        return len(self.records) / self.total if self.total else 0.0

    def summary(self) -> str:
        by = ", ".join(f"{k}={v}" for k, v in self.counts().items()) or "none"
        return f"{len(self)} bad of {self.total} samples ({self.bad_fraction:.1%}): {by}"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "total": self.total,
            "bad": len(self),
            "bad_fraction": self.bad_fraction,
            "counts": self.counts(),
            "samples": [asdict(r) for r in self.records],
        }

    def to_json(self, path: str | os.PathLike) -> str:
        self.path = atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return self.path

    def to_csv(self, path: str | os.PathLike) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.FIELDS, lineterminator="\n")
        w.writeheader()
        for r in self.records:
            w.writerow(asdict(r))
        path = atomic_write_text(path, buf.getvalue())
        self.path = self.path or path
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Quarantine:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        q = cls(total=d.get("total", 0), name=d.get("name", ""))
        q.records = [QuarantineRecord(**r) for r in d.get("samples", [])]
        q.path = os.fspath(path)
        return q

    def fail_if_over(self, max_bad_fraction: float) -> None:
        """Raise `QuarantineError` (naming the report and the counts) if the bad fraction exceeds the limit."""
        if self.bad_fraction > max_bad_fraction:
            where = f"; report: {self.path}" if self.path else ""
            raise QuarantineError(
                f"too many bad samples{' in ' + self.name if self.name else ''}: {self.summary()}, "
                f"more than the allowed {max_bad_fraction:.1%}{where}",
                self,
            )

    def __repr__(self) -> str:
        return f"Quarantine({self.summary()})"


# --------------------------------------------------------------------------------------- precheck


def _precheck_range(dataset, start: int, stop: int) -> list[tuple]:
    """Cheap checks of samples start..stop-1 (`dataset.check(i)`, no pixels decoded): [(index, None | (reason,
    path, message))]. Runs in worker processes."""
    check = getattr(dataset, "check", None)
    out = []
    for i in range(start, stop):
        try:
            if check is not None:
                check(i)
            out.append((i, None))
        except BadSample as b:
            path = b.source or (dataset.source(i) if hasattr(dataset, "source") else "")
            out.append((i, (b.sample_id, b.reason, path, str(b))))
        except Exception as e:  # keep going, as scan does: one odd file must not stop an ingest of a million
            log.exception("unexpected error checking sample %d", i)
            path = dataset.source(i) if hasattr(dataset, "source") else ""
            out.append((i, ("", Reason.UNREADABLE, path, f"{type(e).__name__}: {e}")))
    return out


class PrecheckResult(tuple):
    """What `precheck` found: unpacks as ``good, quarantine``; also ``splits`` of the good samples (from the
    listing) and ``records``: the refused samples as (index, id, path, reason, message), in index order."""

    def __new__(cls, good, quarantine, splits, records):
        self = super().__new__(cls, (good, quarantine))
        self.good, self.quarantine, self.splits, self.records = good, quarantine, splits, records
        return self


def precheck(
    dataset,
    max_bad_fraction: float | None = None,
    *,
    ranges: list[tuple[int, int]] | None = None,
    workers: int = 1,
    progress: bool | None = None,
    report: str | os.PathLike | None = None,
) -> PrecheckResult:
    """The cheap checks of every sample (ingest): `dataset.check(i)` when the dataset has one (a problem found while
    listing; a one-file sample's existence and raster header), nothing is decoded. The pixel checks
    (`check_sample`) run where each sample is decoded once, in preprocessing, and `scan` does both in one pass.

    ranges: only these [start, stop) index ranges (a part of the work, e.g. one task of a flow; default: all).
    workers > 1: a process pool checks disjoint blocks in parallel (the dataset is pickled).
    max_bad_fraction: raise `QuarantineError` when more than this fraction of *all* listed samples fails already
    (None: never). report: write the refused samples there (.json, and .csv beside it) before deciding.
    """
    n = len(dataset)
    ranges = [(0, n)] if ranges is None else [(int(a), int(b)) for a, b in ranges]
    blocks = []
    for a, b in ranges:  # a few large blocks per worker: each call lists the ids/splits it needs once
        step = max(1024, -(-(b - a) // max(1, 4 * workers)))
        blocks += [(s, min(s + step, b)) for s in range(a, b, step)]
    q = Quarantine(total=n, name=str(getattr(dataset, "kind", "") or type(dataset).__name__))
    parts = []
    with tqdm(total=sum(b - a for a, b in blocks), desc=f"check {q.name}", unit="sample", leave=False,
              disable=None if progress is None else not progress) as bar:
        if workers > 1 and len(blocks) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for part in pool.map(_precheck_range, *zip(*[(dataset, a, b) for a, b in blocks])):
                    parts.append(part)
                    bar.update(len(part))
        else:
            for a, b in blocks:
                parts.append(_precheck_range(dataset, a, b))
                bar.update(b - a)
    ids = getattr(dataset, "ids", None)
    all_splits = getattr(dataset, "splits", None)
    good, splits, records = [], [], []
    for part in parts:
        for i, err in part:
            if err is None:
                good.append(i)
                splits.append(all_splits[i] if all_splits is not None else None)
            else:
                sid = err[0] or (ids[i] if ids is not None else str(i))
                records.append((i, sid, err[2], err[1], err[3]))
                q.add(sid, err[2], err[1], err[3])
    log.info("cheap checks of %s: %d passed; %s", q.name, len(good), q.summary())
    if report is not None:
        report = os.fspath(report)
        q.to_json(report)
        q.to_csv(os.path.splitext(report)[0] + ".csv")
    if max_bad_fraction is not None:
        q.fail_if_over(max_bad_fraction)
    return PrecheckResult(good, q, splits, records)


# ------------------------------------------------------------------------------------------- scan


def _scan_range(dataset, start: int, stop: int, checks: dict) -> list[tuple]:
    """Check samples start..stop-1: [(index, id, None | (reason, path, message), digest, split)]; a good
    sample's content digest (`Sample.digest`) is taken while it is in memory. Runs in worker processes."""
    ids = getattr(dataset, "ids", None)
    out = []
    for i in range(start, stop):
        fallback_id = ids[i] if ids is not None else str(i)
        fallback_path = dataset.source(i) if hasattr(dataset, "source") else ""
        try:
            s = check_sample(dataset[i], **checks)
            out.append((i, s.id, None, s.digest(), s.split))
        except BadSample as b:
            out.append((i, b.sample_id or fallback_id, (b.reason, b.source or fallback_path, str(b)), None, None))
        except Exception as e:  # keep going: one odd file must not stop an ingest of a million
            log.exception("unexpected error reading sample %d (%s)", i, fallback_id)
            out.append((i, fallback_id, (Reason.UNREADABLE, fallback_path, f"{type(e).__name__}: {e}"), None, None))
    return out


class ScanResult(tuple):
    """What `scan` found: unpacks as ``good, quarantine``; also ``digests`` and ``splits`` of the good samples
    (same order as ``good``): the content digest of each and the split it belongs to."""

    def __new__(cls, good, quarantine, digests, splits):
        self = super().__new__(cls, (good, quarantine))
        self.good, self.quarantine, self.digests, self.splits = good, quarantine, digests, splits
        return self


def scan(
    dataset,
    max_bad_fraction: float | None = 0.05,
    *,
    report: str | os.PathLike | None = None,
    workers: int = 1,
    chunk_size: int = 256,
    progress: bool | None = None,
    **checks,
) -> ScanResult:
    """Read and check every sample; bad ones go to the quarantine, the scan goes on.

    dataset: any sequence of `Sample`s (a `load_dataset` result: then ids and paths are known without reading).
    checks: keyword arguments of `check_sample` (bands, size, dtype, nodata).
    report: write the quarantine to this .json path (and the same name with .csv) before deciding to fail.
    workers > 1: a process pool reads disjoint index ranges of `chunk_size` in parallel (the dataset is pickled).
    max_bad_fraction: raise `QuarantineError` when more than this fraction is bad (None: never).
    progress: a samples/s bar on stderr, drawn by this process as ranges finish (None: only on a terminal).
    Returns a `ScanResult`: (indices of good samples in increasing order, the Quarantine), plus the good
    samples' content digests and splits.
    """
    n = len(dataset)
    q = Quarantine(total=n, name=str(getattr(dataset, "kind", "") or type(dataset).__name__))
    ranges = [(a, min(a + chunk_size, n)) for a in range(0, n, max(1, chunk_size))]
    parts = []
    with tqdm(total=n, desc=f"scan {q.name}", unit="sample", leave=False,
              disable=None if progress is None else not progress) as bar:
        if workers > 1 and len(ranges) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for part in pool.map(_scan_range, *zip(*[(dataset, a, b, checks) for a, b in ranges])):
                    parts.append(part)
                    bar.update(len(part))
        else:
            for a, b in ranges:
                parts.append(_scan_range(dataset, a, b, checks))
                bar.update(b - a)
    good: list[int] = []
    digests: list[str] = []
    splits: list[str | None] = []
    seen: dict[str, int] = {}
    for part in parts:
        for i, sid, err, digest, split in part:
            if err is None and sid in seen:
                path = dataset.source(i) if hasattr(dataset, "source") else ""
                err = (Reason.DUPLICATE_ID, path, f"duplicate_id: id {sid!r} already read at index {seen[sid]}")
            if err is None:
                seen[sid] = i
                good.append(i)
                digests.append(digest)
                splits.append(split)
            else:
                q.add(sid, err[1], err[0], err[2])
    log.info("scan of %s: %d good; %s", q.name, len(good), q.summary())
    if report is not None:
        report = os.fspath(report)
        q.to_json(report)
        q.to_csv(os.path.splitext(report)[0] + ".csv")
    if max_bad_fraction is not None:
        q.fail_if_over(max_bad_fraction)
    return ScanResult(good, q, digests, splits)
