"""Ingest stage: list every raw sample of a configured dataset and run the cheap checks, which decode nothing (a
problem found while listing, a one-file sample's existence and raster header: `SourceDataset.check`); write a
manifest of the samples that passed, with each one's id and split, and the samples refused so far.

Each sample is decoded once at corpus scale, by the preprocessing worker that writes its shard: the pixel checks,
the content digest of every sample (`Sample.digest`) and the complete quarantine report are made there
(`spectralgpt.stages.preprocess`). Ingest refuses already when the cheap checks alone find more than
``ingest.max_bad_fraction`` of the samples unusable.

The work can be split: `check_part` checks some index ranges (one task of the ingest flow, on any task runner) and
`write_manifest` puts the parts together; `ingest_one` does both in one process (with a pool of ``ingest.workers``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from spectralgpt.config import Params, SourceConfig
from spectralgpt.data.sources import default_bands, load_dataset
from spectralgpt.data.validate import Quarantine, precheck
from spectralgpt.io.atomic import atomic_write_text
from spectralgpt.io.digest import digest_json

log = logging.getLogger(__name__)
FORMAT = 2  #: manifest layout: 2 = listing + cheap checks (the pixel checks and digests are preprocessing's)
#: manifest entries with one value per sample (left out of summaries)
PER_SAMPLE = ("good", "ids", "splits", "refused")


class Selected:
    """A lazy, picklable view of some samples of a dataset (those that passed ingest's cheap checks): decoding
    ``sel[i]`` reads dataset sample ``indices[i]``; ids and sources for reports come from the listing."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)
        self.name = getattr(dataset, "kind", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[self.indices[i]]

    def sample_id(self, i: int) -> str:
        return self.dataset.sample_id(self.indices[i])

    def source(self, i: int) -> str:
        return self.dataset.source(self.indices[i])


def source_bands(src: SourceConfig) -> list[str]:
    """The bands a corpus stores: ``data.sources.<name>.bands``, else its reader's own band set."""
    return list(src.bands) if src.bands else list(default_bands(src.kind))


def open_source(src: SourceConfig):
    return load_dataset(src.kind, src.root, split=src.split, bands=source_bands(src), **src.options)


def interim_dir(params: Params, name: str) -> Path:
    return Path(params.data.interim) / name


def check_part(params: Params, name: str, ranges: list[tuple[int, int]]) -> list[list]:
    """The cheap checks of dataset `name`'s samples in `ranges`: [[index, None | [id, path, reason, message]]]
    (plain lists, so a task can return them from any worker)."""
    ds = open_source(params.data.sources[name])
    found = precheck(ds, ranges=ranges, progress=False)
    refused = {i: [sid, path, reason, message] for i, sid, path, reason, message in found.records}
    return [[i, refused.get(i)] for a, b in ranges for i in range(a, b)]


def n_listed(params: Params, name: str) -> int:
    return len(open_source(params.data.sources[name]))


def write_manifest(params: Params, name: str, parts: list[list[list]], ds=None) -> dict:
    """Put the checked parts of dataset `name` together (they must cover every index once) and write
    <interim>/<name>/manifest.json. Raises `QuarantineError` when the refused fraction is over
    ``ingest.max_bad_fraction`` (the manifest then lists the refused samples, `refused`)."""
    src = params.data.sources[name]
    ds = ds if ds is not None else open_source(src)
    results = sorted((r for part in parts for r in part), key=lambda r: r[0])
    if [r[0] for r in results] != list(range(len(ds))):
        raise ValueError(f"ingest {name}: the checked parts do not cover the {len(ds)} listed samples exactly once")
    ids, splits = ds.ids, ds.splits
    good = [i for i, bad in results if bad is None]
    refused = [{"index": i, "id": bad[0], "path": bad[1], "reason": bad[2], "message": bad[3]}
               for i, bad in results if bad is not None]
    q = Quarantine(total=len(ds), name=src.kind)
    for r in refused:
        q.add(r["id"], r["path"], r["reason"], r["message"])
    out = interim_dir(params, name)
    bands = source_bands(src)
    settings = {"kind": src.kind, "split": src.split, "options": src.options, "bands": bands}
    manifest = {"format": FORMAT, "name": name, "kind": src.kind, "root": str(src.root), "split": src.split,
                "options": src.options, "bands": bands, "class_names": list(ds.class_names or []),
                "n_listed": len(ds), "n_good": len(good), "n_bad": len(refused), "bad_by_reason": q.counts(),
                # what was listed and what the cheap checks said: not the content (preprocessing digests that)
                "listing_digest": digest_json({"ids": ids, "splits": splits, "settings": settings,
                                               "refused": [(r["index"], r["reason"]) for r in refused]}),
                "good": good, "ids": [ids[i] for i in good], "splits": [splits[i] for i in good],
                "refused": refused}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    q.path = str(out / "manifest.json")
    log.info("ingest %s: %d of %d listed samples pass the cheap checks (%s); decoded and checked in preprocessing",
             name, len(good), len(ds), q.counts() or "no problems")
    q.fail_if_over(params.ingest.max_bad_fraction)
    return manifest


def ingest_one(params: Params, name: str) -> dict:
    """List and cheaply check one raw dataset (a process pool of ``ingest.workers``); writes its manifest."""
    ds = open_source(params.data.sources[name])
    found = precheck(ds, workers=params.ingest.workers)
    refused = {i: [sid, path, reason, message] for i, sid, path, reason, message in found.records}
    return write_manifest(params, name, [[[i, refused.get(i)] for i in range(len(ds))]], ds=ds)


def ingest(params: Params, names: list[str] | None = None) -> dict[str, dict]:
    return {name: ingest_one(params, name) for name in names or params.data.sources}


def summary(manifest: dict) -> dict:
    """A manifest without its per-sample lists (for logs, MLflow and the CLI)."""
    return {k: v for k, v in manifest.items() if k not in PER_SAMPLE}


def read_manifest(params: Params, name: str) -> dict:
    path = interim_dir(params, name) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the ingest stage for {name!r} first")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} was written by an older version of ingest: run ingest again")
    return manifest
