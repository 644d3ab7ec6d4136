"""Ingest stage: validate every raw sample of a configured dataset, write the quarantine report and a manifest
of the usable samples with each one's content digest and split.

The digests are what preprocessing keys its shards by (a shard is reused only when the samples it was made from
are byte-for-byte the same), and their list is the corpus' content digest: the same files renamed or rewritten
with other pixels give another digest, the same count of images does not hide a change.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from spectralgpt.config import Params, SourceConfig
from spectralgpt.data.sources import default_bands, load_dataset
from spectralgpt.data.validate import scan
from spectralgpt.io.atomic import atomic_write_text
from spectralgpt.io.digest import digest_json, digest_list

log = logging.getLogger(__name__)
#: manifest entries with one value per usable sample (left out of summaries)
PER_SAMPLE = ("good", "ids", "digests", "splits")


class Selected:
    """A lazy, picklable view of some samples of a dataset (those ingest found usable), with the content
    digest ingest recorded for each: `digest(i)` lets preprocessing decide reuse without decoding."""

    def __init__(self, dataset, indices, digests=None):
        self.dataset, self.indices = dataset, list(indices)
        self.digests = None if digests is None else list(digests)
        self.name = getattr(dataset, "kind", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[self.indices[i]]

    def digest(self, i: int) -> str:
        if self.digests is None:
            raise AttributeError("no content digests recorded")
        return self.digests[i]


def source_bands(src: SourceConfig) -> list[str]:
    """The bands a corpus stores: ``data.sources.<name>.bands``, else its reader's own band set."""
    return list(src.bands) if src.bands else list(default_bands(src.kind))


def open_source(src: SourceConfig):
    return load_dataset(src.kind, src.root, split=src.split, bands=source_bands(src), **src.options)


def ingest_one(params: Params, name: str) -> dict:
    """Validate one raw dataset; writes <interim>/<name>/quarantine.{json,csv} and manifest.json."""
    src = params.data.sources[name]
    out = Path(params.data.interim) / name
    ds = open_source(src)
    found = scan(ds, params.ingest.max_bad_fraction, report=out / "quarantine.json", workers=params.ingest.workers)
    good, quarantine = found
    settings = {"kind": src.kind, "split": src.split, "options": src.options, "bands": source_bands(src)}
    manifest = {"name": name, "kind": src.kind, "root": str(src.root), "split": src.split, "options": src.options,
                "bands": source_bands(src), "class_names": list(ds.class_names or []), "n_listed": len(ds),
                "n_good": len(good), "n_bad": len(ds) - len(good), "bad_by_reason": quarantine.counts(),
                "content_digest": digest_json({"samples": digest_list(found.digests), "settings": settings}),
                "good": good, "ids": [ds.ids[i] for i in good], "digests": found.digests, "splits": found.splits}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    log.info("ingest %s: %d of %d samples usable (%s); content %s", name, len(good), len(ds),
             quarantine.counts() or "no problems", manifest["content_digest"][:12])
    return manifest


def ingest(params: Params, names: list[str] | None = None) -> dict[str, dict]:
    return {name: ingest_one(params, name) for name in names or params.data.sources}


def summary(manifest: dict) -> dict:
    """A manifest without its per-sample lists (for logs, MLflow and the CLI)."""
    return {k: v for k, v in manifest.items() if k not in PER_SAMPLE}


def read_manifest(params: Params, name: str) -> dict:
    path = Path(params.data.interim) / name / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the ingest stage for {name!r} first")
    manifest = json.loads(path.read_text())
    if "digests" not in manifest:
        raise ValueError(f"{path} records no content digests (written by an older version): run ingest again")
    return manifest
