"""The training corpus on disk: fixed-size integer shards, a parquet index and a JSON manifest.

Layout of a corpus folder::

    manifest.json              bands, size, dtype, arrays, shard count, statistics, normalisation
    index.parquet              one row per item: id, source, split, label(s), crs, bounds, shard, offset, ...
    stats.json                 merged per-band statistics (written by preprocessing)
    quarantine.json            samples that could not be used: id, source, reason, message
    shards/shard-00000.image.npy     (N, C, H, W) uint16/int16, memory-mappable
    shards/shard-00000.image2.npy    (N, C, H, W) second date (change detection), optional
    shards/shard-00000.label.npy     (N,) class, (N, K) multi-hot or (N, H, W) mask, optional
    shards/shard-00000.json          sidecar: the commit record of the shard (see below)

A shard is written array by array to temporary names (``.<name>.tmp-<pid>``) and renamed into place, then
its sidecar - holding the file sizes, SHA-256 checksums, the index rows, per-shard statistics and the
quarantined samples - is written the same way. The sidecar is the commit marker: a shard without a valid
sidecar, or whose files disagree with it, is incomplete and is rewritten; stray temporary files are
removed. Because the final index, statistics and manifest are assembled from the sidecars in shard
order, an interrupted and resumed run produces the same bytes as an uninterrupted one.

Many processes may write one corpus: each :class:`ShardWriter` is told which shard numbers it owns and
touches only those files; :func:`finalize_corpus` assembles the result once all shards exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spectralgpt.io.atomic import atomic_write_bytes
from spectralgpt.io.digest import digest_json, digest_list

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SHARD_DIR = "shards"
ARRAY_NAMES = ("image", "image2", "label")
_TMP = re.compile(r"^\.(shard-(\d{5})\..+?)\.(?:tmp-\d+|\w+\.tmp)$")  # ours, or io.atomic's


_INDEX_ORDER = ("id", "sample", "source", "split", "label", "labels", "crs", "minx", "miny", "maxx", "maxy",
                "row_off", "col_off", "window")


def shard_name(j: int) -> str:
    return f"shard-{j:05d}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path, obj, fsync: bool = False, indent: int | None = 1) -> None:
    text = json.dumps(obj, indent=indent, sort_keys=True, separators=None if indent else (",", ":"))
    atomic_write_bytes(path, (text + "\n").encode(), fsync)


def _write_npy(path: Path, arr: np.ndarray, fsync: bool) -> tuple[int, str]:
    """Write arr as .npy atomically; returns (size in bytes, sha256 of the file)."""
    arr = np.ascontiguousarray(arr)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        np.lib.format.write_array(f, arr, allow_pickle=False)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    size = tmp.stat().st_size
    os.replace(tmp, path)
    return size, h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


class ShardWriter:
    """Writes the shards of one corpus folder (or the subset of shard numbers in `owned`).

    ``fingerprint`` identifies the parameters that determine a shard's content (source, size, bands,
    dtype, shard size, ...): a completed shard whose sidecar carries a different fingerprint is stale and
    counts as incomplete. ``verify`` is how completed shards are checked: ``"size"`` (sidecar present and
    every file of the recorded size) or ``"checksum"`` (also the SHA-256 of every file). ``inputs`` maps a
    shard number to the content digest of what it is made from; a shard recorded with other inputs is stale
    too (None: inputs are not checked, e.g. when assembling shards just written).
    """

    def __init__(self, out_dir, *, fingerprint: str = "", inputs: dict[int, str] | None = None, owned=None,
                 verify: str = "size", fsync: bool = True):
        if verify not in ("size", "checksum"):
            raise ValueError(f"verify must be 'size' or 'checksum', got {verify!r}")
        self.out_dir = Path(out_dir)
        self.shard_dir = self.out_dir / SHARD_DIR
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint
        self.inputs = None if inputs is None else {int(j): v for j, v in inputs.items()}
        self.owned = None if owned is None else {int(j) for j in owned}
        self.verify = verify
        self.fsync = fsync

    def owns(self, j: int) -> bool:
        return self.owned is None or j in self.owned

    def _check_owned(self, j):
        if not self.owns(j):
            raise ValueError(f"this writer does not own shard {j} (owned: {sorted(self.owned)})")

    def sidecar_path(self, j: int) -> Path:
        return self.shard_dir / f"{shard_name(j)}.json"

    def array_path(self, j: int, name: str) -> Path:
        return self.shard_dir / f"{shard_name(j)}.{name}.npy"

    def clean_stale(self) -> list[Path]:
        """Remove temporary files left by interrupted writes of the shards this writer owns."""
        removed = []
        for p in self.shard_dir.iterdir():
            m = _TMP.match(p.name)
            if m and self.owns(int(m.group(2))):
                p.unlink(missing_ok=True)
                removed.append(p)
        if removed:
            log.info("removed %d stale temporary file(s) in %s", len(removed), self.shard_dir)
        return removed

    def read_sidecar(self, j: int) -> dict | None:
        try:
            return json.loads(self.sidecar_path(j).read_text())
        except (OSError, ValueError):
            return None

    def is_complete(self, j: int, verify: str | None = None) -> bool:
        """True when shard j is committed, matches the fingerprint and its files check out."""
        meta = self.read_sidecar(j)
        if not meta or meta.get("format") != FORMAT_VERSION or meta.get("fingerprint") != self.fingerprint:
            return False
        if self.inputs is not None and meta.get("inputs") != self.inputs.get(j):
            return False
        verify = verify or self.verify
        for name, info in meta.get("arrays", {}).items():
            p = self.array_path(j, name)
            try:
                if p.stat().st_size != info["bytes"]:
                    return False
            except OSError:
                return False
            if verify == "checksum" and _sha256(p) != info["sha256"]:
                return False
        return True

    def write_shard(self, j: int, arrays: dict[str, np.ndarray], rows: list[dict], *, stats: dict | None = None,
                    quarantine: list[dict] | None = None, extra: dict | None = None) -> dict:
        """Commit shard j: the arrays (same first dimension as `rows`), then the sidecar. Returns the sidecar."""
        self._check_owned(j)
        n = len(rows)
        unknown = set(arrays) - set(ARRAY_NAMES)
        if unknown:
            raise ValueError(f"unknown shard array(s) {sorted(unknown)}; allowed: {ARRAY_NAMES}")
        for name, a in arrays.items():
            if a.shape[0] != n:
                raise ValueError(f"shard {j}: array {name!r} has {a.shape[0]} items for {n} index rows")
        # an old sidecar must not vouch for the new files while they are being replaced
        self.sidecar_path(j).unlink(missing_ok=True)
        info = {}
        for name, a in arrays.items():
            size, digest = _write_npy(self.array_path(j, name), a, self.fsync)
            info[name] = {"bytes": size, "sha256": digest, "shape": list(a.shape), "dtype": a.dtype.name}
        for name in ARRAY_NAMES:  # leftovers of an earlier layout
            if name not in arrays:
                self.array_path(j, name).unlink(missing_ok=True)
        meta = {
            "format": FORMAT_VERSION, "shard": j, "fingerprint": self.fingerprint,
            "inputs": None if self.inputs is None else self.inputs.get(j), "n": n, "arrays": info,
            "rows": rows, "stats": stats, "quarantine": quarantine or [], **(extra or {}),
        }
        atomic_write_json(self.sidecar_path(j), meta, self.fsync, indent=None)
        if self.fsync:
            _fsync_dir(self.shard_dir)
        return meta


def _shard_frame(meta: dict, j: int) -> pd.DataFrame:
    """Shard j's index rows as a frame, with its ``shard`` and ``offset`` columns."""
    f = pd.DataFrame(meta["rows"])
    f["shard"] = np.int64(j)
    f["offset"] = np.arange(len(f), dtype=np.int64)
    return f


def _index_columns(seen: list[str]) -> list[str]:
    """The index's column order: those of `_INDEX_ORDER` first, then the others as they first appear (shard and
    offset last among them)."""
    cols = [c for c in seen if c not in ("shard", "offset")] + ["shard", "offset"]
    first = [c for c in _INDEX_ORDER if c in cols]
    return first + [c for c in cols if c not in first]


def _as_schema(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly the fields of `schema`: columns it lacks as nulls, the others cast (e.g. a column that
    is all None in this shard, typed null, to the type the other shards give it)."""
    if table.schema.equals(schema, check_metadata=True):
        return table
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def finalize_corpus(out_dir, n_shards: int, manifest: dict, *, fingerprint: str | None = None,
                    stats_from_sidecars: bool = True, recipe: str | None = None,
                    inputs: dict[int, str] | None = None) -> dict:
    """Assemble index.parquet, stats.json, quarantine.json and manifest.json from shard sidecars 0..n-1.

    `recipe` names the normalisation recorded in the manifest (``zscore`` / ``clip2sigma`` take the
    merged statistics). Raises when a shard is missing (or, with `inputs`, was made from other inputs). The
    manifest's ``content_digest`` covers every item's digest (index column ``digest``, else the shard files'
    SHA-256) and the corpus settings: it is what training and evaluation are keyed by. Returns the manifest. The
    output depends only on the sidecars, so it is byte-identical however (and by how many processes, in how many
    attempts) the shards were written.

    Memory stays about one shard's whatever the corpus size: the sidecars are read twice, one at a time - first for
    the statistics, the quarantine list and the index's columns and types, then to stream each shard's rows into
    index.parquet as one row group (``pyarrow.parquet.ParquetWriter``) while the item digests are hashed.
    """
    from spectralgpt.data.normalize import BandStats, make_recipe

    out_dir = Path(out_dir)
    writer = ShardWriter(out_dir, fingerprint=fingerprint or manifest.get("fingerprint", ""), inputs=inputs,
                         fsync=False)
    quarantine, shards, seen, schemas = [], [], {}, []
    stats, n_items, offsets = None, 0, Counter()
    for j in range(n_shards):
        if not writer.is_complete(j):
            raise RuntimeError(f"cannot finalise {out_dir}: shard {j} is missing or incomplete")
        meta = writer.read_sidecar(j)
        if meta["rows"]:
            f = _shard_frame(meta, j)
            seen.update(dict.fromkeys(f.columns))
            schemas.append(pa.Schema.from_pandas(f[_index_columns(list(f.columns))], preserve_index=False))
            n_items += len(f)
            if "dn_offset" in f.columns:
                offsets.update(f["dn_offset"].dropna().tolist())
            del f
        quarantine.extend(meta["quarantine"])
        if stats_from_sidecars and meta.get("stats"):
            part = BandStats.from_dict(meta["stats"])
            stats = part if stats is None else stats.merge(part)
        shards.append({"shard": j, "n": meta["n"], "arrays": meta["arrays"]})
        del meta
    cols = _index_columns(list(seen))
    tmp = out_dir / f".index.parquet.tmp-{os.getpid()}"
    if n_items:
        unified = pa.unify_schemas(schemas, promote_options="permissive")
        schema = pa.schema([unified.field(c) for c in cols], metadata=schemas[0].metadata)
    else:
        pd.DataFrame({"id": pd.Series([], dtype=str), "shard": pd.Series([], dtype="int64"),
                      "offset": pd.Series([], dtype="int64")}).to_parquet(tmp, index=False)
    del schemas

    def item_digests():  # pass 2: each shard's rows into index.parquet, its item digests to the corpus digest
        with pq.ParquetWriter(tmp, schema, compression="snappy") as out:
            for j in range(n_shards):
                meta = writer.read_sidecar(j)
                if not meta["rows"]:
                    continue
                f = _shard_frame(meta, j)
                del meta
                f = f[[c for c in cols if c in f.columns]]
                out.write_table(_as_schema(pa.Table.from_pandas(f, preserve_index=False), schema))
                yield from (str(d) for d in f["digest"]) if "digest" in f.columns else ["nan"] * len(f)

    manifest = dict(manifest)
    manifest.update({"format": FORMAT_VERSION, "n_items": n_items, "n_shards": n_shards, "shards": shards,
                     "n_quarantined": len(quarantine)})
    if "dn_offset" in cols:  # Sentinel-2 baseline 04.00 offsets subtracted: {offset: item count}
        manifest["dn_offsets"] = {str(k): int(v) for k, v in sorted(offsets.items())}
    if stats is not None:
        atomic_write_json(out_dir / "stats.json", stats.to_dict(), indent=None)
        manifest["stats"] = stats.summary()
    if recipe:
        manifest["normalization"] = make_recipe(recipe, stats, bands=manifest.get("bands")).to_dict()
    if "digest" in cols:
        items = digest_list(item_digests())
    else:
        if n_items:
            for _ in item_digests():
                pass
        items = digest_list(a["sha256"] for sh in shards for a in sh["arrays"].values())
    os.replace(tmp, out_dir / "index.parquet")
    manifest["content_digest"] = digest_json({"items": items, "settings": manifest})
    atomic_write_json(out_dir / "quarantine.json", quarantine)
    atomic_write_json(out_dir / "manifest.json", manifest)
    log.info("corpus %s: %d items in %d shards, %d quarantined", out_dir, n_items, n_shards, len(quarantine))
    return manifest


class ShardCorpus:
    """Random access to a finished corpus through memory-mapped shards (no GeoTIFF decoding).

    ``corpus[i]`` -> dict with ``image`` (C, H, W) and, when present, ``image2`` and ``label`` (numpy views
    into the memory map; copy before modifying), plus ``index`` = i. ``corpus.index`` is the parquet index
    as a DataFrame; ``corpus.manifest`` the manifest; ``corpus.stats()`` the merged BandStats. Safe to pass
    to DataLoader workers: the memory maps are reopened lazily in each process.
    """

    def __init__(self, path, split: str | None = None):
        self.path = Path(path)
        if split is not None and (self.path / split / "manifest.json").exists():
            self.path, split, self._whole = self.path / split, None, split  # a corpus stored one folder per split
        else:
            self._whole = None
        mpath = self.path / "manifest.json"
        if not mpath.exists():
            raise FileNotFoundError(f"{self.path} is not a shard corpus (no manifest.json); run preprocessing first")
        self.manifest = json.loads(mpath.read_text())
        index = pd.read_parquet(self.path / "index.parquet")
        if split is not None:
            if "split" not in index.columns:
                raise ValueError(f"corpus {self.path} has no split column")
            index = index[index["split"] == split].reset_index(drop=True)
        self.split = split or self._whole
        self._filtered = split is not None
        self.index = index
        self._shard = index["shard"].to_numpy(np.int64)
        self._offset = index["offset"].to_numpy(np.int64)
        self.arrays = tuple(n for n in ARRAY_NAMES if self.manifest["shards"] and n in self.manifest["shards"][0]["arrays"])
        self._maps: dict = {}

    # lazily reopened memory maps: do not pickle them
    def __getstate__(self):
        d = self.__dict__.copy()
        d["_maps"] = {}
        return d

    @property
    def content_digest(self) -> str:
        """SHA-256 of what these items are (their digests and the corpus settings): the data version of
        anything computed from them. A split filtered out of a mixed corpus is digested from its rows."""
        if not self._filtered and self.manifest.get("content_digest"):
            return self.manifest["content_digest"]
        if "digest" not in self.index.columns:
            raise ValueError(f"corpus {self.path} records no item digests (written by an older version): "
                             "preprocess it again")
        settings = {k: v for k, v in self.manifest.items() if k not in ("content_digest", "shards", "n_items",
                                                                         "n_quarantined", "stats", "normalization")}
        return digest_json({"items": digest_list(self.index["digest"]), "split": self.split, "settings": settings})

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(self.manifest["bands"])

    @property
    def size(self) -> int:
        return int(self.manifest["size"])

    def __len__(self) -> int:
        return len(self.index)

    def _map(self, shard: int, name: str) -> np.ndarray:
        key = (shard, name)
        m = self._maps.get(key)
        if m is None:
            m = np.load(self.path / SHARD_DIR / f"{shard_name(shard)}.{name}.npy", mmap_mode="r")
            self._maps[key] = m
        return m

    def locate(self, i: int) -> tuple[int, int]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for a corpus of {len(self)} items")
        return int(self._shard[i]), int(self._offset[i])

    def __getitem__(self, i: int) -> dict:
        s, o = self.locate(int(i))
        out = {name: self._map(s, name)[o] for name in self.arrays}
        out["index"] = int(i)
        return out

    def get_batch(self, indices, name: str = "image") -> np.ndarray:
        """Stack items `indices` of array `name` (reads each shard with one sorted fancy index)."""
        idx = np.asarray(indices, np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"indices out of range for a corpus of {len(self)} items")
        idx = np.where(idx < 0, idx + len(self), idx)
        shards, offsets = self._shard[idx], self._offset[idx]
        first = self._map(int(shards[0]), name) if idx.size else None
        out = np.empty((idx.size, *first.shape[1:]), first.dtype) if idx.size else np.empty((0,))
        for s in np.unique(shards):
            sel = np.nonzero(shards == s)[0]
            order = np.argsort(offsets[sel], kind="stable")
            sel = sel[order]
            out[sel] = self._map(int(s), name)[offsets[sel]]
        return out

    def stats(self):
        from spectralgpt.data.normalize import BandStats

        p = self.path / "stats.json"
        return BandStats.from_dict(json.loads(p.read_text())) if p.exists() else None

    def quarantine(self) -> list[dict]:
        p = self.path / "quarantine.json"
        return json.loads(p.read_text()) if p.exists() else []
