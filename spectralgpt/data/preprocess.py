"""Preprocessing: any lazy sequence of :class:`Sample` -> a shard corpus (see :mod:`spectralgpt.io.shards`).

Shard ``j`` holds the usable samples among source indices ``[j * shard_size, (j + 1) * shard_size)``. Each
sample is decoded **once**, by the process that writes its shard, and checked there
(:func:`spectralgpt.data.validate.check_sample`: NaN/inf, all-nodata, constant, shapes, labels, and the optional
bands/size/dtype); a sample whose read raises :class:`BadSample` (or any I/O error) or fails a check is left out
and recorded in the shard's quarantine list with its id, source, reason and message - the records
``validate.scan`` would report. Shards are processed by a process pool (``workers=1`` runs inline) or by the
tasks of a flow (``shards=``); every worker reads its own samples, so peak memory is about one shard per worker
whatever the corpus size. Per-shard statistics are merged into ``stats.json``.

Reuse is keyed by content: a finished shard is kept when it was made from the same inputs - the digests of its
samples (``Sample.digest`` of each usable one, the quarantine record of each refused one), taken while they are
decoded to write it; or, for a source that tells them without decoding (``source.digest(i)``), before reading,
and then the shard is not read at all. A rerun produces the same bytes as an uninterrupted run. Each index row
carries the content digest of its item, and the manifest the corpus' ``content_digest``.

Geometry (``fit``) - chosen to keep the 10 m ground sampling distance and the radiometry wherever possible,
which is what a remote-sensing user expects:

``"crop"`` (default)  an image at least ``size`` on both sides is **centre-cropped** (no resampling); a
                      smaller one is centre-cropped to a square and **resized up** (bilinear for images,
                      nearest for masks) - e.g. 64 px EuroSAT to 128 px, as the original pipeline does.
                      To keep EuroSAT native, preprocess it with ``size=64`` and let the dataset's
                      random-resized crop produce the model size on the fly.
``"tile"``            a larger image is cut into ``size`` tiles covering it completely (the last row and
                      column are aligned to the image edge, so they may overlap their neighbour); the right
                      choice for scenes (OSCD cities, Sen1Floods11 chips). Tile ids are
                      ``<id>_r<row>_c<col>``.
``"resize"``          centre square crop, then resize to ``size`` (changes the pixel size).

Each index row carries the georeference of the stored window (``crs``, bounds ``minx miny maxx maxy``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from spectralgpt.bands import canonical_list, select_bands
from spectralgpt.data.normalize import BandStats
from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.data.validate import check_sample
from spectralgpt.io.digest import digest_arrays, digest_json, digest_list
from spectralgpt.io.shards import ShardWriter, finalize_corpus

log = logging.getLogger(__name__)

FITS = ("crop", "tile", "resize")
#: how many samples after a shard with no usable sample `_probe` reads to learn the corpus' settings
PROBE_TRIES = 64
LABEL_KINDS = ("none", "class", "multilabel", "mask")


@dataclass
class PreprocessResult:
    out_dir: Path
    n_samples: int
    n_shards: int
    written: list[int]
    skipped: list[int]
    quarantine: list[dict]
    manifest: dict | None = None
    n_items: int = 0
    meta: dict = field(default_factory=dict)
    spec: dict | None = None  #: the resolved settings every shard was written with (pass on as ``spec=``)


# ------------------------------------------------------------------------------------------------------
# Sample -> stored items
# ------------------------------------------------------------------------------------------------------
def _label_kind(label) -> tuple[str, int | None]:
    if label is None:
        return "none", None
    a = np.asarray(label)
    if a.ndim == 0:
        return "class", None
    if a.ndim == 1:
        return "multilabel", int(a.shape[0])
    if a.ndim == 2:
        return "mask", None
    raise ValueError(f"cannot store a label of shape {a.shape}")


def _to_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if x.dtype == dtype:
        return x
    info = np.iinfo(dtype)
    if x.dtype.kind == "f":
        x = np.rint(x)
    return np.clip(x, info.min, info.max).astype(dtype)


def _resize(x: np.ndarray, size: int, mask: bool) -> np.ndarray:
    """Resize (C, H, W) or (H, W) to size x size: bilinear (antialiased when shrinking) or nearest for masks."""
    import torch
    import torch.nn.functional as F

    two_d = x.ndim == 2
    t = torch.from_numpy(np.ascontiguousarray(x[None] if two_d else x).astype(np.float32))[None]
    if mask:
        y = F.interpolate(t, size=(size, size), mode="nearest-exact")
    else:
        shrink = t.shape[-1] > size or t.shape[-2] > size
        y = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    y = y[0].numpy()
    return y[0] if two_d else y


def _windows(h: int, w: int, size: int, fit: str) -> list[tuple[int, int, int]]:
    """(row, col, side) windows in source pixels; side > size means resize down, < size resize up."""
    if fit == "tile" and h >= size and w >= size:
        rows = sorted({min(r, h - size) for r in range(0, h, size)})
        cols = sorted({min(c, w - size) for c in range(0, w, size)})
        return [(r, c, size) for r in rows for c in cols]
    if fit == "crop" and h >= size and w >= size:
        return [((h - size) // 2, (w - size) // 2, size)]
    side = min(h, w)
    return [((h - side) // 2, (w - side) // 2, side)]


def _cut(x, r, c, side, size, mask):
    win = x[..., r:r + side, c:c + side]
    return win if side == size else _resize(win, size, mask)


def _bounds(transform, r, c, side):
    if transform is None:
        return (None, None, None, None)
    xs, ys = [], []
    for dr, dc in ((0, 0), (0, side), (side, 0), (side, side)):
        col, row = c + dc, r + dr
        xs.append(float(transform.a * col + transform.b * row + transform.c))
        ys.append(float(transform.d * col + transform.e * row + transform.f))
    return (min(xs), min(ys), max(xs), max(ys))


def _crs_str(crs):
    if crs is None:
        return None
    try:
        return crs.to_string()
    except AttributeError:
        return str(crs)


#: index columns that say where an item came from rather than what it is: left out of its content digest
_PLACE = ("sample", "source", "digest")


def item_digest(arrays: dict, row: dict) -> str:
    """Content digest of one stored item: its arrays and what the index says of it (id, split, labels,
    georeference), not where it was read from."""
    return digest_arrays(arrays, {k: v for k, v in row.items() if k not in _PLACE})


def sample_items(sample: Sample, spec: dict) -> list[tuple[dict, dict]]:
    """Turn one sample into stored items: a list of (arrays, index row). Raises BadSample when unusable."""
    size, fit = spec["size"], spec["fit"]
    dtype = np.dtype(spec["dtype"])
    img = np.asarray(sample.image)
    if img.ndim != 3:
        raise BadSample(Reason.WRONG_SIZE, f"image must be (C, H, W), got shape {img.shape}", sample.source, sample.id)
    try:
        img = select_bands(img, sample.bands, spec["bands"])
    except (KeyError, ValueError) as e:
        raise BadSample(Reason.MISSING_BANDS, str(e).strip('"'), sample.source, sample.id) from None
    if img.dtype.kind == "f" and not np.isfinite(img).all():
        raise BadSample(Reason.NAN_INF, "image contains NaN or infinite values", sample.source, sample.id)
    if not img.any():
        raise BadSample(Reason.ALL_NODATA, "image is all zeros", sample.source, sample.id)
    h, w = img.shape[1:]
    img2 = None
    if spec["has_image2"]:
        if sample.image2 is None:
            raise BadSample(Reason.MISSING_FILE, "change-detection sample without a second date", sample.source, sample.id)
        img2 = select_bands(np.asarray(sample.image2), sample.bands, spec["bands"])
        if img2.shape != img.shape:
            raise BadSample(Reason.WRONG_SIZE, f"dates differ in shape: {img.shape} vs {img2.shape}",
                            sample.source, sample.id)
    kind = spec["label_kind"]
    label = sample.label
    got_kind, k = _label_kind(label)
    if got_kind != kind or (kind == "multilabel" and k != spec["num_labels"]):
        raise BadSample(Reason.BAD_LABEL, f"expected a {kind} label, got {got_kind} ({np.shape(label)})",
                        sample.source, sample.id)
    if kind == "mask" and np.shape(label) != (h, w):
        raise BadSample(Reason.WRONG_SIZE, f"mask {np.shape(label)} does not match image {(h, w)}",
                        sample.source, sample.id)
    items = []
    windows = _windows(h, w, size, fit)
    for r, c, side in windows:
        arrays = {"image": _to_dtype(_cut(img, r, c, side, size, False), dtype)}
        if img2 is not None:
            arrays["image2"] = _to_dtype(_cut(img2, r, c, side, size, False), dtype)
        row = {"id": sample.id if len(windows) == 1 else f"{sample.id}_r{r}_c{c}", "sample": int(spec["_i"]),
               "source": str(sample.source), "split": sample.split}
        if sample.meta.get("dn_offset") is not None:  # Sentinel-2 baseline 04.00 offset subtracted on reading
            row["dn_offset"] = json.dumps(sample.meta["dn_offset"])
        if kind == "class":
            arrays["label"] = np.asarray(int(label), np.int64)
            row["label"] = int(label)
        elif kind == "multilabel":
            hot = np.asarray(label)
            arrays["label"] = (hot > 0.5).astype(np.uint8)
            row["labels"] = [int(v) for v in np.nonzero(hot > 0.5)[0]]
        elif kind == "mask":
            arrays["label"] = _cut(np.asarray(label), r, c, side, size, True).astype(spec["label_dtype"])
        minx, miny, maxx, maxy = _bounds(sample.transform, r, c, side)
        row.update(crs=_crs_str(sample.crs), minx=minx, miny=miny, maxx=maxx, maxy=maxy,
                   row_off=int(r), col_off=int(c), window=int(side))
        row["digest"] = item_digest(arrays, row)
        items.append((arrays, row))
    return items


# ------------------------------------------------------------------------------------------------------
# The plan: what every shard of one corpus is written with
# ------------------------------------------------------------------------------------------------------
def resolve_spec(spec: dict, probe: Sample) -> dict:
    """The settings taken from the data (band order when not given, dtype, label kind, second date), from the
    corpus' first usable sample `probe`; every shard of a corpus is written with the same resolved spec."""
    bands = canonical_list(spec["bands"] if spec["bands"] is not None else probe.bands)
    pdt = np.asarray(probe.image).dtype
    dtype = np.dtype(spec["dtype"] or ("int16" if pdt.kind == "i" else "uint16")).name
    kind, k = _label_kind(probe.label)
    label_dtype = None
    if kind == "mask":
        ldt = np.asarray(probe.label).dtype
        label_dtype = "int16" if ldt.kind in "if" and ldt != np.uint8 else ldt.name
    return {**spec, "bands": list(bands), "dtype": dtype, "has_image2": probe.image2 is not None, "label_kind": kind,
            "num_labels": k, "label_dtype": label_dtype}


def _resolved(spec: dict) -> bool:
    return "label_kind" in spec


def spec_fingerprint(spec: dict) -> str:
    """What a shard's content depends on besides its samples (a shard with another fingerprint is stale)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------------
# One shard
# ------------------------------------------------------------------------------------------------------
def _quarantine_entry(i, exc, source, reason=None, message=None):
    """The record of sample i that could not be used: the same id, path, reason and message as
    `spectralgpt.data.validate.scan` reports."""
    sid = getattr(exc, "sample_id", "") or ""
    src = getattr(exc, "source", "") or ""
    if not sid:
        try:
            sid = str(source.sample_id(i))  # optional hook of a source
        except Exception:  # noqa: BLE001 - best effort
            sid = str(i)
    if not src:
        try:
            src = str(source.source(i))  # optional hook of a source
        except Exception:  # noqa: BLE001 - best effort
            src = ""
    return {"index": int(i), "id": sid, "source": src, "reason": reason or getattr(exc, "reason", Reason.UNREADABLE),
            "message": message or str(exc)}


class OutsidePart(LookupError):
    """Sample index outside the part of a source that a worker was sent (see `stages.preprocess.ShardPart`): a bug
    in how the work was split, never a bad sample, so it is raised, not quarantined."""


def _read_checked(source, i: int, checks: dict) -> tuple[Sample | None, dict | None]:
    """Decode sample i and run the pixel checks (`check_sample`): (sample, None), or (None, its quarantine entry)."""
    try:
        return check_sample(source[i], **checks), None
    except BadSample as e:
        log.debug("quarantined sample %d: %s", i, e)
        return None, _quarantine_entry(i, e, source)
    except OutsidePart:
        raise
    except Exception as e:  # noqa: BLE001 - one odd file must not stop a corpus of a million (as in scan)
        log.exception("unexpected error reading sample %d", i)
        return None, _quarantine_entry(i, e, source, Reason.UNREADABLE, f"{type(e).__name__}: {e}")


def process_shard(source, j: int, spec: dict, out_dir, *, inputs: dict[int, str] | None = None,
                  verify: str = "size", fsync: bool = True) -> dict:
    """Decode and check the samples of shard j once, convert them and commit the shard, unless it is already
    complete and was made from the same inputs. Returns a small summary with the (resolved) spec.

    The shard's input key is ``inputs[j]`` when the source told the samples' digests up front, else the digest of
    what was just decoded: each usable sample's `Sample.digest` and each refused sample's quarantine entry. A spec
    that is not resolved yet is resolved from the shard's first usable sample (no extra read).
    """
    n, s = spec["n"], spec["shard_size"]
    lo, hi = j * s, min(n, (j + 1) * s)
    items: list[tuple[dict, dict]] = []
    quarantine, keys = [], []
    for i in range(lo, hi):
        sample, bad = _read_checked(source, i, spec["checks"])
        if bad is None:
            if not _resolved(spec):
                spec = resolve_spec(spec, sample)
            keys.append(sample.digest())
            try:
                items.extend(sample_items(sample, {**spec, "_i": i}))
            except BadSample as e:
                quarantine.append(_quarantine_entry(i, e, source))
        else:
            keys.append(digest_json(bad))
            quarantine.append(bad)
        del sample
    if not _resolved(spec):  # no usable sample in this shard: the first one after it decides
        spec = resolve_spec(spec, _probe(source, n, spec["checks"], start=hi))
    key = inputs[j] if inputs is not None else digest_list(keys)
    writer = ShardWriter(out_dir, fingerprint=spec_fingerprint(spec), inputs={j: key}, owned=[j], verify=verify,
                         fsync=fsync)
    summary = {"shard": j, "n": len(items), "quarantined": len(quarantine), "spec": spec}
    if writer.is_complete(j):
        log.info("shard %d: complete and made from the same inputs, kept", j)
        return {**summary, "written": False}
    c, size = len(spec["bands"]), spec["size"]
    dtype = np.dtype(spec["dtype"])
    arrays = {"image": np.empty((len(items), c, size, size), dtype)}
    if spec["has_image2"]:
        arrays["image2"] = np.empty_like(arrays["image"])
    if spec["label_kind"] == "class":
        arrays["label"] = np.empty((len(items),), np.int64)
    elif spec["label_kind"] == "multilabel":
        arrays["label"] = np.empty((len(items), spec["num_labels"]), np.uint8)
    elif spec["label_kind"] == "mask":
        arrays["label"] = np.empty((len(items), size, size), np.dtype(spec["label_dtype"]))
    rows = []
    for k, (arr, row) in enumerate(items):
        for name, a in arr.items():
            arrays[name][k] = a
        rows.append(row)
    del items
    stats = BandStats.for_dtype(c, dtype, bands=spec["bands"], histogram=spec["histogram"])
    for k0 in range(0, len(rows), 64):  # bounded temporaries
        stats.update(arrays["image"][k0:k0 + 64], ignore_value=spec["ignore_value"])
    writer.write_shard(j, arrays, rows, stats=stats.to_dict(), quarantine=quarantine)
    log.info("shard %d: %d items, %d quarantined", j, len(rows), len(quarantine))
    return {**summary, "written": True}


_WORKER: dict = {}


def _init_worker(source, spec, out_dir, inputs, verify, fsync):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    _WORKER.update(source=source, spec=spec, kwargs={"inputs": inputs, "verify": verify, "fsync": fsync},
                   out_dir=out_dir)


def _run_in_worker(j):
    return process_shard(_WORKER["source"], j, _WORKER["spec"], _WORKER["out_dir"], **_WORKER["kwargs"])


# ------------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------------
def _probe(source, n, checks=None, start: int = 0, max_tries: int = PROBE_TRIES) -> Sample:
    """The first usable sample from index `start` on (read and checked): what `resolve_spec` needs."""
    last = None
    stop = min(n, start + max_tries)
    for i in range(start, stop):
        sample, bad = _read_checked(source, i, checks or {})
        if bad is None:
            return sample
        last = bad["message"]
    raise ValueError(f"no usable sample among samples {start}..{stop - 1} of the source (last problem: {last}); "
                     "see the quarantine report")


def shard_inputs(source, n: int, shard_size: int) -> dict[int, str] | None:
    """Content key of each shard's inputs when the source tells its samples' digests without decoding them
    (``source.digest(i)``): then a finished shard is kept without reading its samples. None otherwise: each shard
    is keyed by the digests of the samples decoded to write it (and kept when they match)."""
    if not callable(getattr(source, "digest", None)):
        return None
    try:
        return {j: digest_list(source.digest(i) for i in range(j * shard_size, min(n, (j + 1) * shard_size)))
                for j in range(math.ceil(n / shard_size))}
    except AttributeError:
        return None


def preprocess(source, out_dir, size: int = 128, shard_size: int = 256, workers: int = 2, *, bands=None,
               dtype: str | None = None, fit: str = "crop", shards=None, finalize: bool = True,
               verify: str = "size", histogram: bool = True, ignore_value=None, recipe: str | None = "minmax",
               name: str | None = None, fsync: bool = True, meta: dict | None = None,
               progress: bool | None = None, checks: dict | None = None, spec: dict | None = None) -> PreprocessResult:
    """Write `source` (a lazy sequence of Sample: len() and [i]) as a shard corpus under `out_dir`.

    Each sample is decoded once, by the process that writes its shard, and checked there (`check_sample` with
    `checks`: bands, size, dtype, nodata); unusable ones go to the shard's quarantine list.

    size: stored side in pixels (see the module docstring for ``fit``). shard_size: source samples per
    shard. workers: processes (1 = inline). bands: names to store, in that order (default: the first
    usable sample's bands). dtype: 'uint16' / 'int16' (default: int16 for signed sources, else uint16).
    shards: only these shard numbers (many processes can split the work; a last call with ``shards=[]``
    assembles the result); finalize: assemble the index and statistics once every shard exists.
    spec: the resolved settings another call returned (``PreprocessResult.spec``): calls that split the work pass
    the first one's, so the data-derived settings are not read again (without it, a call that does not write
    shard 0 reads one sample to learn them). verify: 'size' or 'checksum' check of completed shards on
    resume. ignore_value: pixel value left out of the statistics (e.g. a nodata 0). recipe: the
    normalisation recorded in the manifest. meta: extra JSON entries for the manifest (e.g. class names).
    progress: a samples/s bar on stderr advanced as shards finish (None: only on a terminal).
    Returns a PreprocessResult (quarantine list included).
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    if size < 1 or shard_size < 1 or workers < 1:
        raise ValueError(f"size, shard_size and workers must be >= 1, got {size}, {shard_size}, {workers}")
    if dtype is not None and np.dtype(dtype).name not in ("uint16", "int16", "uint8"):
        raise ValueError(f"dtype must be uint16, int16 or uint8, got {dtype!r}")
    n = len(source)
    if not n:
        raise ValueError("the source is empty")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_shards = math.ceil(n / shard_size)
    static = {
        "n": n, "size": int(size), "shard_size": int(shard_size),
        "bands": None if bands is None else list(canonical_list(bands)),
        "dtype": None if dtype is None else np.dtype(dtype).name, "fit": fit, "histogram": bool(histogram),
        "ignore_value": None if ignore_value is None else float(ignore_value),
        "source": name or getattr(source, "name", None) or type(source).__name__,
        "checks": json.loads(json.dumps(checks or {}, sort_keys=True, default=list)),
    }
    if spec is not None:
        differ = [k for k, v in static.items() if k not in ("bands", "dtype") or v is not None if spec.get(k) != v]
        if differ or not _resolved(spec):
            raise ValueError(f"spec= was resolved for other settings ({', '.join(differ) or 'not resolved'})")
    else:
        spec = static
    owned = list(range(n_shards)) if shards is None else sorted({int(j) for j in shards})
    bad = [j for j in owned if not 0 <= j < n_shards]
    if bad:
        raise ValueError(f"shard numbers {bad} out of range 0..{n_shards - 1}")
    inputs = shard_inputs(source, n, shard_size)
    ShardWriter(out_dir, owned=owned, fsync=fsync).clean_stale()
    if not _resolved(spec) and (inputs is not None or not owned or owned[0] != 0):
        spec = resolve_spec(spec, _probe(source, n, spec["checks"]))  # one extra read: shard 0 is not ours to write
    if inputs is None:
        todo = list(owned)  # each shard is decoded and kept when its decoded inputs match
    else:
        have = ShardWriter(out_dir, fingerprint=spec_fingerprint(spec), inputs=inputs, fsync=False)
        todo = [j for j in owned if not have.is_complete(j)]
    skipped = [j for j in owned if j not in set(todo)]
    if skipped:
        log.info("resuming: %d of %d shard(s) complete with the same inputs, not read again", len(skipped), len(owned))
    log.info("preprocessing %d samples into %d shard(s) of %d under %s (%d to read, %d worker(s))",
             n, n_shards, shard_size, out_dir, len(todo), workers)
    samples = {j: min(n, (j + 1) * shard_size) - j * shard_size for j in todo}
    kwargs = {"inputs": inputs, "verify": verify, "fsync": fsync}
    done: list[dict] = []
    bar = tqdm(total=sum(samples.values()), desc=f"preprocess {out_dir.name}", unit="sample", leave=False,
               disable=None if progress is None else not progress)
    with bar:
        rest = list(todo)
        if rest and not _resolved(spec):  # shard 0 first: its first usable sample settles the spec for all
            done.append(process_shard(source, rest.pop(0), spec, out_dir, **kwargs))
            spec = done[-1]["spec"]
            bar.update(samples[done[-1]["shard"]])
        if workers == 1 or len(rest) <= 1:
            for j in rest:
                done.append(process_shard(source, j, spec, out_dir, **kwargs))
                bar.update(samples[j])
        else:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            with ProcessPoolExecutor(min(workers, len(rest)), mp_context=ctx, initializer=_init_worker,
                                     initargs=(source, spec, str(out_dir), inputs, verify, fsync)) as ex:
                futures = {ex.submit(_run_in_worker, j): j for j in rest}
                for k, fut in enumerate(as_completed(futures), 1):
                    done.append(fut.result())
                    bar.update(samples[futures[fut]])
                    log.debug("%d/%d shards done", k, len(rest))
    written = sorted(d["shard"] for d in done if d["written"])
    skipped = sorted(skipped + [d["shard"] for d in done if not d["written"]])
    result = PreprocessResult(out_dir, n, n_shards, written, skipped, [], spec=spec)
    fingerprint = spec_fingerprint(spec)
    assembler = ShardWriter(out_dir, fingerprint=fingerprint, inputs=inputs, fsync=False)
    all_done = all(assembler.is_complete(j, verify="size") for j in range(n_shards)) if finalize else False
    if finalize and all_done:
        manifest = {key: spec[key] for key in ("size", "shard_size", "bands", "dtype", "fit", "label_kind",
                                               "num_labels", "label_dtype", "ignore_value", "source")}
        manifest.update(meta or {})
        manifest["fingerprint"] = fingerprint
        manifest["n_samples"] = n
        manifest["arrays"] = ["image"] + (["image2"] if spec["has_image2"] else []) + (
            ["label"] if spec["label_kind"] != "none" else [])
        result.manifest = finalize_corpus(out_dir, n_shards, manifest, fingerprint=fingerprint, recipe=recipe,
                                          inputs=inputs)
        result.n_items = result.manifest["n_items"]
        result.quarantine = json.loads((out_dir / "quarantine.json").read_text())
    elif finalize:
        log.info("not finalising %s: some shards are written by other processes and are not complete yet", out_dir)
    if result.quarantine:
        log.warning("%d sample(s) quarantined (see %s)", len(result.quarantine), out_dir / "quarantine.json")
    return result
