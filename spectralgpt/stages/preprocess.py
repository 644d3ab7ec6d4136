"""Preprocess stage: the usable samples of each corpus as memory-mappable uint16 shards.

Layout: the pretraining corpus is one shard corpus (``<shards>/pretrain``); a task corpus is one shard corpus
per split (``<shards>/<task>/train``, ``.../val``, ``.../test``), each with its own index, statistics and content
digest. DVC tracks each split folder on its own, so new test labels re-run evaluation only, never fine-tuning,
and the normalisation statistics a model is trained with come from its training split alone.

Shards are keyed by the content digests ingest recorded for their samples: a rerun reuses a finished shard
only when the samples it was made from are byte-for-byte the same.
"""

from __future__ import annotations

import logging
from pathlib import Path

from spectralgpt.config import Params
from spectralgpt.data.preprocess import PreprocessResult, preprocess
from spectralgpt.stages.ingest import Selected, open_source, read_manifest

log = logging.getLogger(__name__)
WHOLE = "pretrain"  #: the one corpus stored whole: pretraining uses every usable image, whatever its split


def splits_of(params: Params, name: str) -> list[str | None]:
    """The sub-corpora `name` is written as: [None] (whole) for pretraining, else its samples' splits."""
    if name == WHOLE:
        return [None]
    found = read_manifest(params, name)["splits"]
    if any(s is None for s in found):
        raise ValueError(f"corpus {name!r}: some samples have no split (train/val/test); a task corpus needs one "
                         f"for every sample: give data.sources.{name} a dataset whose layout defines splits")
    return [s for s in ("train", "val", "test") if s in set(found)]


def corpus_dir(params: Params, name: str, split: str | None = None) -> Path:
    root = Path(params.data.shards) / name
    return root if split is None else root / split


def preprocess_job(params: Params, name: str, split: str | None = None) -> dict:
    """The `preprocess` arguments that write corpus `name` (split `split`) from the samples ingest found usable
    (everything but `workers`, `shards` and `finalize`, which say how the work is split)."""
    manifest = read_manifest(params, name)
    keep = [k for k, s in enumerate(manifest["splits"]) if split is None or s == split]
    source = Selected(open_source(params.data.sources[name]), [manifest["good"][k] for k in keep],
                      [manifest["digests"][k] for k in keep])
    cfg = params.preprocess
    return dict(source=source, out_dir=corpus_dir(params, name, split), size=cfg.size_for(name),
                shard_size=cfg.shard_size, bands=manifest["bands"], fit=cfg.fit_for(name), recipe=cfg.recipe_for(name),
                name=name, meta={"class_names": manifest["class_names"], "dataset_kind": manifest["kind"],
                                 "split": split})


def preprocess_one(params: Params, name: str) -> dict[str | None, PreprocessResult]:
    """Every sub-corpus of `name` in one call, each with a process pool of `preprocess.workers`."""
    return {split: preprocess(**preprocess_job(params, name, split), workers=params.preprocess.workers)
            for split in splits_of(params, name)}


def preprocess_all(params: Params, names: list[str] | None = None) -> dict[str, dict[str | None, PreprocessResult]]:
    return {name: preprocess_one(params, name) for name in names or params.data.sources}
