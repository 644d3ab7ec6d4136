"""Preprocess stage: the usable samples of each corpus as memory-mappable uint16 shards, and each corpus'
quarantine report.

Layout: the pretraining corpus is one shard corpus (``<shards>/pretrain``); a task corpus is one shard corpus
per split (``<shards>/<task>/train``, ``.../val``, ``.../test``), each with its own index, statistics and content
digest. DVC tracks each split folder on its own, so new test labels re-run evaluation only, never fine-tuning,
and the normalisation statistics a model is trained with come from its training split alone.

Each sample that passed ingest's cheap checks is decoded once, by the worker that writes its shard, and checked
there (the pixel checks of `spectralgpt.data.validate.check_sample`). A shard is keyed by the content digests of
the samples it was made from (`Sample.digest`, taken as they are decoded): a rerun keeps a finished shard only
when they are byte-for-byte the same. `quarantine_report` then writes ``<shards>/quarantine/<name>.json|csv``: the
samples ingest refused and those the workers refused, in listing order - the report `validate.scan` would write
- and refuses the corpus when their fraction is over ``ingest.max_bad_fraction``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from spectralgpt.config import Params
from spectralgpt.data.preprocess import PROBE_TRIES, OutsidePart, PreprocessResult, preprocess
from spectralgpt.data.validate import Quarantine
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


def _selection(manifest: dict, split: str | None) -> list[int]:
    """Dataset indices of the samples of sub-corpus `split` that passed ingest's cheap checks, in listing order."""
    return [i for i, s in zip(manifest["good"], manifest["splits"]) if split is None or s == split]


def preprocess_job(params: Params, name: str, split: str | None = None) -> dict:
    """The `preprocess` arguments that write corpus `name` (split `split`) from the samples that passed ingest's
    cheap checks (everything but `workers`, `shards`, `finalize` and `spec`, which say how the work is split)."""
    manifest = read_manifest(params, name)
    source = Selected(open_source(params.data.sources[name]), _selection(manifest, split))
    cfg = params.preprocess
    return dict(source=source, out_dir=corpus_dir(params, name, split), size=cfg.size_for(name),
                shard_size=cfg.shard_size, bands=manifest["bands"], fit=cfg.fit_for(name), recipe=cfg.recipe_for(name),
                name=name, meta={"class_names": manifest["class_names"], "dataset_kind": manifest["kind"],
                                 "split": split})


class ShardPart:
    """The samples of some shards of a corpus' source (a `Selected`), and only those: what one task is sent, so that
    its memory does not grow with the corpus. Its length and indices are the whole source's (shard numbers, sample
    indices and quarantine records stay the same); reading an index it does not hold raises `OutsidePart`. Its
    entries are the reader's own (`SourceDataset.subset`): a sample reads exactly as from the whole listing."""

    def __init__(self, source: Selected, ranges: list[tuple[int, int]]):
        self.n, self.name = len(source), source.name
        self.ranges = [(lo, hi) for lo, hi in ranges if lo < hi]  # source indices held, ascending, disjoint
        self.dataset = source.dataset.subset([source.indices[i] for lo, hi in self.ranges for i in range(lo, hi)])

    def __len__(self) -> int:
        return self.n

    def _local(self, i: int) -> int:
        k = 0
        for lo, hi in self.ranges:
            if lo <= i < hi:
                return k + i - lo
            k += hi - lo
        raise OutsidePart(f"sample {i} is not in this part of the source (it holds {self.ranges})")

    def __getitem__(self, i: int):
        return self.dataset[self._local(i)]

    def sample_id(self, i: int) -> str:
        return self.dataset.sample_id(self._local(i))

    def source(self, i: int) -> str:
        return self.dataset.source(self._local(i))


def part_job(job: dict, shards: list[int]) -> dict:
    """`job` (a `preprocess_job`) whose source holds only the samples of `shards` (none for the assembly,
    ``shards=[]``); with shard 0 also the samples after it that `_probe` may read when shard 0 has no usable one."""
    n, size = len(job["source"]), job["shard_size"]
    ranges: list[tuple[int, int]] = []
    for j in sorted(set(shards)):
        lo, hi = j * size, min(n, (j + 1) * size + (PROBE_TRIES if j == 0 else 0))
        if ranges and lo <= ranges[-1][1]:  # overlapping or adjacent: one range
            prev_lo, prev_hi = ranges.pop()
            lo, hi = prev_lo, max(prev_hi, hi)
        ranges.append((lo, hi))
    return {**job, "source": ShardPart(job["source"], ranges)}


def quarantine_path(params: Params, name: str) -> Path:
    """``<data.shards>/quarantine/<name>.json`` (and ``.csv``): beside the corpus, in the stage's output."""
    return Path(params.data.shards) / "quarantine" / f"{name}.json"


def quarantine_report(params: Params, name: str) -> Quarantine:
    """Corpus `name`'s quarantine report, written to `quarantine_path` (.json and .csv) from ingest's
    refusals and the quarantine lists of its finished sub-corpora; raises `QuarantineError` (naming the report)
    when the unusable fraction of the listed samples is over ``ingest.max_bad_fraction``."""
    manifest = read_manifest(params, name)
    records = [(r["index"], r["id"], r["path"], r["reason"], r["message"]) for r in manifest["refused"]]
    for split in splits_of(params, name):
        chosen = _selection(manifest, split)
        path = corpus_dir(params, name, split) / "quarantine.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: corpus {name} ({split or 'whole'}) is not finished")
        for r in json.loads(path.read_text()):
            records.append((chosen[r["index"]], r["id"], r["source"], r["reason"], r["message"]))
    q = Quarantine(total=manifest["n_listed"], name=manifest["kind"])
    for _, sid, src, reason, message in sorted(records, key=lambda r: r[0]):
        q.add(sid, src, reason, message)
    out = quarantine_path(params, name)
    q.to_json(out)
    q.to_csv(out.with_suffix(".csv"))
    log.info("%s: %s (report %s)", name, q.summary(), out)
    q.fail_if_over(params.ingest.max_bad_fraction)
    return q


def preprocess_one(params: Params, name: str) -> dict[str | None, PreprocessResult]:
    """Every sub-corpus of `name` in one call, each with a process pool of `preprocess.workers`, then the
    corpus' quarantine report."""
    out = {split: preprocess(**preprocess_job(params, name, split), workers=params.preprocess.workers)
           for split in splits_of(params, name)}
    quarantine_report(params, name)
    return out


def preprocess_all(params: Params, names: list[str] | None = None) -> dict[str, dict[str | None, PreprocessResult]]:
    return {name: preprocess_one(params, name) for name in names or params.data.sources}
