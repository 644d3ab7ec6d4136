"""Preprocessing: shard layout, quarantine, geometry, labels, parallel/partial runs and crash-resume."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from corpus_helpers import ArraySource, TifFolder, tree_bytes

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.data.preprocess import preprocess
from spectralgpt.data.synthetic import generate
from spectralgpt.io.shards import ShardCorpus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    generate("pretrain", root, n=48, size=32, seed=3)
    return root


def test_quarantine_and_shard_boundaries(tmp_path):
    src = ArraySource(10, bad={1: "unreadable", 5: "missing_band", 6: "nan"}, label="class")
    # the samples are checked where they are decoded (check_sample, with the expected bands)
    r = preprocess(src, tmp_path, size=32, shard_size=4, workers=1, fsync=False, checks={"bands": src.bands})
    assert r.n_shards == 3 and r.n_items == 7
    assert [(q["index"], q["reason"]) for q in r.quarantine] == [(1, "unreadable"), (5, "missing_bands"),
                                                                  (6, "nan_inf")]
    assert all(q["id"] == f"a{q['index']}" and q["source"] == f"mem://{q['index']}" for q in r.quarantine)
    c = ShardCorpus(tmp_path)
    assert c.index["sample"].tolist() == [0, 2, 3, 4, 7, 8, 9]
    assert c.index["shard"].tolist() == [0, 0, 0, 1, 1, 2, 2]  # shard j = source indices [4j, 4j+4)
    assert c.manifest["label_kind"] == "class" and c.index["label"].tolist() == [0, 2, 3, 4, 2, 3, 4]
    assert set(c.index["split"]) == {"train", "val"}


def test_geometry_and_georeference(tmp_path):
    # larger -> centre crop without resampling; bounds follow the window
    r = preprocess(ArraySource(2, hw=(50, 60)), tmp_path / "crop", size=32, shard_size=4, workers=1, fsync=False)
    c = ShardCorpus(r.out_dir)
    full = ArraySource(2, hw=(50, 60))[1]
    np.testing.assert_array_equal(c[1]["image"], full.image[:, 9:41, 14:46])
    row = c.index.iloc[1]
    assert (row.minx, row.maxy, row.maxx, row.miny) == (501000 + 140.0, 5000000 - 90.0, 501000 + 460.0, 5000000 - 410.0)
    assert row.crs == "EPSG:32632"
    # tiles cover the scene; the last row/column is aligned to the edge
    r = preprocess(ArraySource(1, hw=(70, 64), label="mask"), tmp_path / "tile", size=32, fit="tile",
                   shard_size=4, workers=1, fsync=False)
    c = ShardCorpus(r.out_dir)
    assert len(c) == 6 and c.index["row_off"].tolist() == [0, 0, 32, 32, 38, 38]
    for i in range(6):  # mask derived from the image still matches after tiling
        np.testing.assert_array_equal(c[i]["label"], c[i]["image"][0] % 7)
    # smaller -> resized up; masks nearest (no new label values)
    r = preprocess(ArraySource(1, hw=(16, 16), label="mask"), tmp_path / "up", size=32, shard_size=4, workers=1,
                   fsync=False)
    c = ShardCorpus(r.out_dir)
    assert c[0]["image"].shape == (3, 32, 32)
    assert set(np.unique(c[0]["label"])) <= set(np.unique(ArraySource(1, hw=(16, 16), label="mask")[0].label))


def test_label_kinds_and_second_date(tmp_path):
    r = preprocess(ArraySource(5, label="multilabel", image2=True), tmp_path, size=32, shard_size=2, workers=1,
                   fsync=False, dtype="uint16")
    c = ShardCorpus(r.out_dir)
    assert c.arrays == ("image", "image2", "label") and c[0]["label"].shape == (5,)
    s = ArraySource(5, label="multilabel", image2=True)[3]
    np.testing.assert_array_equal(c[3]["label"], s.label.astype(np.uint8))
    assert c.index["labels"].iloc[3].tolist() == np.nonzero(s.label)[0].tolist()
    np.testing.assert_array_equal(c[3]["image2"], s.image2[:, 4:36, 4:36])


def test_parallel_and_split_runs_are_byte_identical(tmp_path, pool):
    a = preprocess(TifFolder(pool), tmp_path / "a", size=32, shard_size=5, workers=1, fsync=False)
    preprocess(TifFolder(pool), tmp_path / "b", size=32, shard_size=5, workers=2, fsync=False)
    # three "processes" each owning some shards, then a finalising call
    for part in ([0, 3, 6, 9], [1, 4, 7], [2, 5, 8]):
        r = preprocess(TifFolder(pool), tmp_path / "c", size=32, shard_size=5, workers=1, shards=part, fsync=False)
        assert r.manifest is None or part == [2, 5, 8]
    preprocess(TifFolder(pool), tmp_path / "c", size=32, shard_size=5, workers=1, shards=[], fsync=False)
    ref = tree_bytes(tmp_path / "a")
    assert a.n_items == 48 and ShardCorpus(tmp_path / "a").bands == PRETRAIN_BANDS
    assert tree_bytes(tmp_path / "b") == ref
    assert tree_bytes(tmp_path / "c") == ref


def test_sigkill_midway_then_resume_is_byte_identical(tmp_path, pool):
    ref_dir, out = tmp_path / "ref", tmp_path / "out"
    preprocess(TifFolder(pool), ref_dir, size=32, shard_size=4, workers=1)
    script = textwrap.dedent(f"""
        from corpus_helpers import TifFolder
        from spectralgpt.data.preprocess import preprocess
        preprocess(TifFolder({str(pool)!r}, delay=0.04), {str(out)!r}, size=32, shard_size=4, workers=2)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)])}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    shard_dir = out / "shards"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(shard_dir.glob("shard-*.json"))) < 4:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: main process and pool workers
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    done = sorted(shard_dir.glob("shard-*.json"))
    assert 4 <= len(done) < 12 and not (out / "manifest.json").exists()
    # debris of a crash: a partial temporary file and an array written without its sidecar
    (shard_dir / ".shard-00011.image.npy.tmp-424242").write_bytes(b"\x93NUMPY partial")
    (shard_dir / "shard-00010.image.npy").write_bytes(b"truncated")
    (shard_dir / "shard-00010.json").unlink(missing_ok=True)
    r = preprocess(TifFolder(pool), out, size=32, shard_size=4, workers=2)
    assert len(r.skipped) >= 4 - 1 and 10 in r.written
    assert tree_bytes(out) == tree_bytes(ref_dir)
    assert not [p for p in shard_dir.iterdir() if ".tmp-" in p.name]


class Counted:
    """A source that counts how often each of its samples is decoded (and can change one sample's pixels)."""

    def __init__(self, inner, bump=None):
        self.inner, self.bump, self.reads, self.name = inner, bump, {}, inner.name

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.reads[i] = self.reads.get(i, 0) + 1
        s = self.inner[i]
        if i == self.bump:
            s.image = s.image + 1
        return s


def test_each_sample_is_decoded_once_and_split_calls_share_the_spec(tmp_path):
    src = Counted(ArraySource(10, bad={6: "nan"}, label="class"))
    r = preprocess(src, tmp_path / "a", size=32, shard_size=4, workers=1, fsync=False)
    assert src.reads == dict.fromkeys(range(10), 1) and r.written == [0, 1, 2] and r.n_items == 9
    # work split over calls: the first writes shard 0 and settles the spec, the others are given it
    src = Counted(ArraySource(10, bad={6: "nan"}, label="class"))
    first = preprocess(src, tmp_path / "b", size=32, shard_size=4, workers=1, fsync=False, shards=[0], finalize=False)
    preprocess(src, tmp_path / "b", size=32, shard_size=4, workers=1, fsync=False, shards=[1, 2], spec=first.spec,
               finalize=False)
    preprocess(src, tmp_path / "b", size=32, shard_size=4, workers=1, fsync=False, shards=[], spec=first.spec)
    assert src.reads == dict.fromkeys(range(10), 1)
    assert tree_bytes(tmp_path / "b") == tree_bytes(tmp_path / "a")
    with pytest.raises(ValueError, match="resolved for other settings"):
        preprocess(src, tmp_path / "b", size=16, shard_size=4, workers=1, shards=[], spec=first.spec)


def test_without_digests_shards_are_kept_by_their_decoded_content(tmp_path):
    """A source that cannot tell its samples' digests without decoding them (the pipeline's own): a rerun decodes
    each shard once more and keeps it when the samples' digests match; new pixels in one sample rewrite its shard."""
    ref = preprocess(ArraySource(12, label="class"), tmp_path, size=32, shard_size=4, workers=2, fsync=False)
    before = tree_bytes(tmp_path)
    again = preprocess(ArraySource(12, label="class"), tmp_path, size=32, shard_size=4, workers=2, fsync=False)
    assert ref.written == [0, 1, 2] and again.written == [] and again.skipped == [0, 1, 2]
    assert tree_bytes(tmp_path) == before
    changed = preprocess(Counted(ArraySource(12, label="class"), bump=5), tmp_path, size=32, shard_size=4,
                         workers=1, fsync=False)
    assert changed.written == [1] and changed.skipped == [0, 2]
    assert changed.manifest["content_digest"] != ref.manifest["content_digest"]
    after = tree_bytes(tmp_path)
    assert {k for k in after if after[k] != before.get(k)} >= {"shards/shard-00001.image.npy", "manifest.json"}
    assert not {k for k in after if after[k] != before.get(k)} & {"shards/shard-00000.json", "shards/shard-00002.json"}
