"""Preprocessing: any lazy sequence of :class:`Sample` -> a shard corpus (see :mod:`spectralgpt.io.shards`).

Shard ``j`` holds the usable samples among source indices ``[j * shard_size, (j + 1) * shard_size)``; a
sample whose read raises :class:`BadSample` (or an I/O error) is left out and recorded in the quarantine
list with its id, source, reason and message. Shards are processed by a process pool (``workers=1`` runs
inline); every worker reads its own samples, so peak memory is about one shard per worker whatever the
corpus size. Per-shard statistics are merged into ``stats.json``. A rerun skips the shards that are
complete (verified against their sidecar) and were made from the same inputs - the content digests of their
samples, ``source.digest(i)``, recorded by ingest - and produces the same bytes as an uninterrupted run; a
source without digests has every shard written anew. Each index row carries the content digest of its item,
and the manifest the corpus' ``content_digest``.

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
from spectralgpt.data.sample import BadSample, Sample
from spectralgpt.io.digest import digest_arrays, digest_list
from spectralgpt.io.shards import ShardWriter, finalize_corpus

log = logging.getLogger(__name__)

FITS = ("crop", "tile", "resize")
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
        raise BadSample("bad_shape", f"image must be (C, H, W), got shape {img.shape}", sample.source, sample.id)
    try:
        img = select_bands(img, sample.bands, spec["bands"])
    except (KeyError, ValueError) as e:
        raise BadSample("missing_bands", str(e).strip('"'), sample.source, sample.id) from None
    if img.dtype.kind == "f" and not np.isfinite(img).all():
        raise BadSample("non_finite", "image contains NaN or infinite values", sample.source, sample.id)
    if not img.any():
        raise BadSample("empty", "image is all zeros", sample.source, sample.id)
    h, w = img.shape[1:]
    img2 = None
    if spec["has_image2"]:
        if sample.image2 is None:
            raise BadSample("missing_image2", "change-detection sample without a second date", sample.source, sample.id)
        img2 = select_bands(np.asarray(sample.image2), sample.bands, spec["bands"])
        if img2.shape != img.shape:
            raise BadSample("shape_mismatch", f"dates differ in shape: {img.shape} vs {img2.shape}",
                            sample.source, sample.id)
    kind = spec["label_kind"]
    label = sample.label
    got_kind, k = _label_kind(label)
    if got_kind != kind or (kind == "multilabel" and k != spec["num_labels"]):
        raise BadSample("bad_label", f"expected a {kind} label, got {got_kind} ({np.shape(label)})",
                        sample.source, sample.id)
    if kind == "mask" and np.shape(label) != (h, w):
        raise BadSample("shape_mismatch", f"mask {np.shape(label)} does not match image {(h, w)}",
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
# One shard
# ------------------------------------------------------------------------------------------------------
def _quarantine_entry(i, exc, source):
    sid = getattr(exc, "sample_id", "") or ""
    src = getattr(exc, "source", "") or ""
    if not sid:
        try:
            sid = str(source.sample_id(i))  # optional hook of a source
        except Exception:  # noqa: BLE001 - best effort
            sid = str(i)
    return {"index": int(i), "id": sid, "source": str(src), "reason": getattr(exc, "reason", type(exc).__name__),
            "message": str(exc)}


def process_shard(source, j: int, spec: dict, writer: ShardWriter) -> dict:
    """Read samples of shard j, convert them and commit the shard. Returns a small summary."""
    n, s = spec["n"], spec["shard_size"]
    lo, hi = j * s, min(n, (j + 1) * s)
    items: list[tuple[dict, dict]] = []
    quarantine = []
    for i in range(lo, hi):
        try:
            sample = source[i]
            items.extend(sample_items(sample, {**spec, "_i": i}))
        except (BadSample, OSError) as e:
            quarantine.append(_quarantine_entry(i, e, source))
            log.debug("quarantined sample %d: %s", i, e)
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
    return {"shard": j, "n": len(rows), "quarantined": len(quarantine)}


_WORKER: dict = {}


def _init_worker(source, spec, out_dir, fingerprint, inputs, verify, fsync):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    _WORKER.update(source=source, spec=spec,
                   writer=ShardWriter(out_dir, fingerprint=fingerprint, inputs=inputs, verify=verify, fsync=fsync))


def _run_in_worker(j):
    return process_shard(_WORKER["source"], j, _WORKER["spec"], _WORKER["writer"])


# ------------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------------
def _probe(source, n, max_tries=64) -> Sample:
    last = None
    for i in range(min(n, max_tries)):
        try:
            return source[i]
        except (BadSample, OSError) as e:
            last = e
    raise ValueError(f"no readable sample among the first {min(n, max_tries)} of the source (last error: {last})")


def shard_inputs(source, n: int, shard_size: int) -> dict[int, str] | None:
    """Content key of each shard's inputs: the digests of its source samples (``source.digest(i)``, which
    ingest records), or None when the source cannot tell (then nothing already written is trusted)."""
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
               progress: bool | None = None) -> PreprocessResult:
    """Write `source` (a lazy sequence of Sample: len() and [i]) as a shard corpus under `out_dir`.

    size: stored side in pixels (see the module docstring for ``fit``). shard_size: source samples per
    shard. workers: processes (1 = inline). bands: names to store, in that order (default: the first
    readable sample's bands). dtype: 'uint16' / 'int16' (default: int16 for signed sources, else uint16).
    shards: only these shard numbers (many processes can split the work; a last call with ``shards=[]``
    assembles the result); finalize: assemble the index and statistics once every shard exists.
    verify: 'size' or 'checksum' check of completed shards on
    resume. ignore_value: pixel value left out of the statistics (e.g. a nodata 0). recipe: the
    normalisation recorded in the manifest. meta: extra JSON entries for the manifest (e.g. class names).
    progress: a samples/s bar on stderr advanced as shards finish (None: only on a terminal). Returns a PreprocessResult (quarantine list included).
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    if size < 1 or shard_size < 1 or workers < 1:
        raise ValueError(f"size, shard_size and workers must be >= 1, got {size}, {shard_size}, {workers}")
    n = len(source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_shards = math.ceil(n / shard_size) if n else 0
    probe = _probe(source, n) if n else None
    if probe is None:
        raise ValueError("the source is empty")
    bands = canonical_list(bands if bands is not None else probe.bands)
    pdt = np.asarray(probe.image).dtype
    dtype = np.dtype(dtype or ("int16" if pdt.kind == "i" else "uint16")).name
    if dtype not in ("uint16", "int16", "uint8"):
        raise ValueError(f"dtype must be uint16, int16 or uint8, got {dtype!r}")
    kind, k = _label_kind(probe.label)
    label_dtype = None
    if kind == "mask":
        ldt = np.asarray(probe.label).dtype
        label_dtype = "int16" if ldt.kind in "if" and ldt != np.uint8 else ldt.name
    spec = {
        "n": n, "size": int(size), "shard_size": int(shard_size), "bands": list(bands), "dtype": dtype,
        "fit": fit, "has_image2": probe.image2 is not None, "label_kind": kind, "num_labels": k,
        "label_dtype": label_dtype, "histogram": bool(histogram),
        "ignore_value": None if ignore_value is None else float(ignore_value),
        "source": name or getattr(source, "name", None) or type(source).__name__,
    }
    fingerprint = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    owned = list(range(n_shards)) if shards is None else sorted({int(j) for j in shards})
    bad = [j for j in owned if not 0 <= j < n_shards]
    if bad:
        raise ValueError(f"shard numbers {bad} out of range 0..{n_shards - 1}")
    inputs = shard_inputs(source, n, shard_size)
    writer = ShardWriter(out_dir, fingerprint=fingerprint, inputs=inputs, owned=owned, verify=verify, fsync=fsync)
    writer.clean_stale()
    if inputs is None:
        log.info("the source records no content digests: every shard is written anew (nothing is reused)")
        todo = list(owned)
    else:
        todo = [j for j in owned if not writer.is_complete(j)]
    skipped = [j for j in owned if j not in set(todo)]
    if skipped:
        log.info("resuming: %d of %d shard(s) already complete", len(skipped), len(owned))
    log.info("preprocessing %d samples into %d shard(s) of %d under %s (%d to write, %d worker(s))",
             n, n_shards, shard_size, out_dir, len(todo), workers)
    samples = {j: min(n, (j + 1) * shard_size) - j * shard_size for j in todo}
    bar = tqdm(total=sum(samples.values()), desc=f"preprocess {out_dir.name}", unit="sample", leave=False,
               disable=None if progress is None else not progress)
    with bar:
        if workers == 1 or len(todo) <= 1:
            for j in todo:
                process_shard(source, j, spec, writer)
                bar.update(samples[j])
        else:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_init_worker,
                                     initargs=(source, spec, str(out_dir), fingerprint, inputs, verify, fsync)) as ex:
                futures = {ex.submit(_run_in_worker, j): j for j in todo}
                for done, fut in enumerate(as_completed(futures), 1):
                    fut.result()
                    bar.update(samples[futures[fut]])
                    log.debug("%d/%d shards done", done, len(todo))
    result = PreprocessResult(out_dir, n, n_shards, todo, skipped, [])
    assembler = ShardWriter(out_dir, fingerprint=fingerprint, inputs=inputs, fsync=False)
    all_done = all(assembler.is_complete(j, verify="size") for j in range(n_shards)) if finalize else False
    if finalize and all_done:
        manifest = {key: spec[key] for key in ("size", "shard_size", "bands", "dtype", "fit", "label_kind",
                                               "num_labels", "label_dtype", "ignore_value", "source")}
        manifest.update(meta or {})
        manifest["fingerprint"] = fingerprint
        manifest["n_samples"] = n
        manifest["arrays"] = ["image"] + (["image2"] if spec["has_image2"] else []) + (
            ["label"] if kind != "none" else [])
        result.manifest = finalize_corpus(out_dir, n_shards, manifest, fingerprint=fingerprint, recipe=recipe,
                                          inputs=inputs)
        result.n_items = result.manifest["n_items"]
        result.quarantine = json.loads((out_dir / "quarantine.json").read_text())
    elif finalize:
        log.info("not finalising %s: some shards are written by other processes and are not complete yet", out_dir)
    if result.quarantine:
        log.warning("%d sample(s) quarantined (see %s)", len(result.quarantine), out_dir / "quarantine.json")
    return result

