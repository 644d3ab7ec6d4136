"""The data stages of the pipeline: ingest (validate every raw sample, write the quarantine report and a
manifest of usable samples) and preprocess (write the usable samples as a shard corpus)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.config import Params, SourceConfig
from spectralgpt.data.preprocess import PreprocessResult, preprocess
from spectralgpt.data.sources import load_dataset
from spectralgpt.data.validate import scan
from spectralgpt.io.atomic import atomic_write_text

log = logging.getLogger(__name__)


class Selected:
    """A lazy, picklable view of some indices of a dataset (the samples ingest found usable)."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)
        self.name = getattr(dataset, "kind", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[self.indices[i]]


def open_source(src: SourceConfig):
    return load_dataset(src.kind, src.root, split=src.split, bands=PRETRAIN_BANDS, **src.options)


def ingest_one(params: Params, name: str) -> dict:
    """Validate one raw dataset; writes <interim>/<name>/quarantine.{json,csv} and manifest.json."""
    src = params.data.sources[name]
    out = Path(params.data.interim) / name
    ds = open_source(src)
    good, quarantine = scan(ds, params.ingest.max_bad_fraction, report=out / "quarantine.json",
                            workers=params.ingest.workers)
    manifest = {"name": name, "kind": src.kind, "root": str(src.root), "split": src.split, "options": src.options,
                "bands": list(PRETRAIN_BANDS), "class_names": list(ds.class_names or []), "n_listed": len(ds),
                "n_good": len(good), "n_bad": len(ds) - len(good), "bad_by_reason": quarantine.counts(),
                "good": good, "ids": [ds.ids[i] for i in good]}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    log.info("ingest %s: %d of %d samples usable (%s)", name, len(good), len(ds), quarantine.counts() or "no problems")
    return manifest


def ingest(params: Params, names: list[str] | None = None) -> dict[str, dict]:
    return {name: ingest_one(params, name) for name in names or params.data.sources}


def read_manifest(params: Params, name: str) -> dict:
    path = Path(params.data.interim) / name / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the ingest stage for {name!r} first")
    return json.loads(path.read_text())


def preprocess_job(params: Params, name: str) -> dict:
    """The `preprocess` arguments that write corpus <shards>/<name> from the samples ingest found usable
    (everything but `workers`, `shards` and `finalize`, which say how the work is split)."""
    manifest = read_manifest(params, name)
    cfg = params.preprocess
    return dict(source=Selected(open_source(params.data.sources[name]), manifest["good"]),
                out_dir=Path(params.data.shards) / name, size=cfg.size_for(name), shard_size=cfg.shard_size,
                bands=PRETRAIN_BANDS, fit=cfg.fit_for(name), recipe=cfg.recipe_for(name), name=name,
                meta={"class_names": manifest["class_names"], "dataset_kind": manifest["kind"]})


def preprocess_one(params: Params, name: str) -> PreprocessResult:
    """Shard corpus <shards>/<name> in one call, with a process pool of `preprocess.workers`."""
    return preprocess(**preprocess_job(params, name), workers=params.preprocess.workers)


def preprocess_all(params: Params, names: list[str] | None = None) -> dict[str, PreprocessResult]:
    return {name: preprocess_one(params, name) for name in names or params.data.sources}
