"""A shard task holds only its shard's samples (`stages.preprocess.part_job`), and the assembly streams the index:
the corpus written shard by shard from parts is the corpus written from the whole listing, byte for byte."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spectralgpt.data.preprocess import PROBE_TRIES, OutsidePart, preprocess
from spectralgpt.data.sources.folder import Folder
from spectralgpt.data.synthetic import generate
from spectralgpt.io.shards import ShardWriter, finalize_corpus
from spectralgpt.stages.ingest import Selected
from spectralgpt.stages.preprocess import part_job


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("tifs")
    generate("pretrain", root, n=11, size=8, compress=None)
    tifs = sorted(root.rglob("*.tif"))
    tifs[3].write_bytes(b"not a GeoTIFF")  # decoded by shard 0's task: quarantined there
    ds = Folder(root, bands=None)
    keep = [i for i in range(len(ds)) if i != 5]  # one sample refused by ingest's cheap checks
    return dict(source=Selected(ds, keep), size=8, shard_size=3, bands=None, fit="crop", recipe="minmax",
                name="pretrain", meta={"split": None})


def test_a_part_holds_only_the_samples_of_its_shards(job):
    sel = job["source"]
    ids = [sel.sample_id(i) for i in range(len(sel))]
    part = part_job(job, [2])["source"]
    assert len(part) == len(sel) == 10
    assert part.dataset.ids == ids[6:9]  # the entries it carries: shard 2's, no other
    assert [part[i].id for i in range(6, 9)] == ids[6:9]
    assert [part.sample_id(i) for i in range(6, 9)] == ids[6:9]  # read from the entry, not the whole listing
    assert ids == [sel.dataset.ids[k] for k in sel.indices]
    for i in (0, 5, 9):
        with pytest.raises(OutsidePart):
            part[i]
    assert part_job(job, [])["source"].dataset.ids == []  # the assembly's
    first = part_job(job, [0])["source"]  # shard 0 and the samples `_probe` may read after it
    assert first.dataset.ids == ids[:3 + PROBE_TRIES]
    both = part_job(job, [3, 1])["source"]
    assert both.ranges == [(3, 6), (9, 10)] and both.dataset.ids == ids[3:6] + ids[9:]


def test_parts_write_the_corpus_the_whole_listing_writes(job, tmp_path):
    whole = preprocess(**job, out_dir=tmp_path / "whole", workers=1)
    spec = preprocess(**part_job(job, [0]), out_dir=tmp_path / "parts", workers=1, shards=[0], finalize=False).spec
    for j in range(1, whole.n_shards):
        preprocess(**part_job(job, [j]), out_dir=tmp_path / "parts", workers=1, shards=[j], finalize=False, spec=spec)
    parts = preprocess(**part_job(job, []), out_dir=tmp_path / "parts", workers=1, shards=[], spec=spec)
    assert parts.manifest["content_digest"] == whole.manifest["content_digest"] and whole.n_items == 9
    assert [q["id"] for q in parts.quarantine] == [job["source"].sample_id(3)]
    a, b = _tree(tmp_path / "whole"), _tree(tmp_path / "parts")
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []


def test_streamed_index_is_the_concatenation_of_the_shards_rows(tmp_path):
    """Shards that differ in columns and types (a column only some shards have, one all None in a shard) give the
    index one frame of them all would: one row group per shard, the same values and types."""
    w = ShardWriter(tmp_path, fingerprint="fp")
    rows = {0: [{"id": "a", "split": None, "minx": None, "digest": "d0"}],
            1: [{"id": "b", "split": "train", "dn_offset": '{"B2": 1000}', "minx": 1.5, "digest": "d1"},
                {"id": "c", "split": "val", "minx": 2.5, "digest": "d2"}],
            2: [],
            3: [{"id": "d", "split": "test", "dn_offset": '{"B2": 1000}', "minx": None, "digest": "d3"}]}
    for j, r in rows.items():
        w.write_shard(j, {"image": np.zeros((len(r), 1, 2, 2), np.uint16)}, r)
    m = finalize_corpus(tmp_path, 4, {"bands": ["B2"]}, fingerprint="fp")
    got = pd.read_parquet(tmp_path / "index.parquet")
    frames = [pd.DataFrame(r).assign(shard=j, offset=range(len(r))) for j, r in rows.items() if r]
    want = pd.concat(frames, ignore_index=True)[list(got.columns)]
    assert list(got.columns) == ["id", "split", "minx", "digest", "dn_offset", "shard", "offset"]
    assert got.astype(object).where(got.notna(), None).values.tolist() == \
        want.astype(object).where(want.notna(), None).values.tolist()
    assert str(got["minx"].dtype) == "float64" and m["n_items"] == 4 and m["dn_offsets"] == {'{"B2": 1000}': 2}
