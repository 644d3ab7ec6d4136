"""Shard writer/reader: round trip, commit marker, verification, stale temp files, ownership."""

import pickle

import numpy as np
import pytest

from spectralgpt.data.normalize import BandStats
from spectralgpt.io.shards import ShardCorpus, ShardWriter, finalize_corpus


def _shard(j, n=3, c=2, s=4):
    rng = np.random.default_rng(j)
    img = rng.integers(0, 10000, (n, c, s, s)).astype(np.uint16)
    lab = np.arange(n, dtype=np.int64) + 10 * j
    rows = [{"id": f"s{j}_{k}", "source": f"f{j}_{k}.tif", "split": "train", "label": int(lab[k]), "crs": "EPSG:32632",
             "minx": 0.0, "miny": 0.0, "maxx": 40.0, "maxy": 40.0} for k in range(n)]
    stats = BandStats(c).update(img).to_dict()
    return {"image": img, "label": lab}, rows, stats


def _write(tmp_path, n_shards=3, **kw):
    w = ShardWriter(tmp_path, fingerprint="fp1", **kw)
    data = [_shard(j) for j in range(n_shards)]
    for j, (arrays, rows, stats) in enumerate(data):
        w.write_shard(j, arrays, rows, stats=stats, quarantine=[{"id": f"bad{j}", "reason": "x"}] if j == 1 else [])
    return w, data


def test_round_trip(tmp_path):
    w, data = _write(tmp_path)
    m = finalize_corpus(tmp_path, 3, {"bands": ["B2", "B3"], "size": 4, "dtype": "uint16"}, fingerprint="fp1",
                        recipe="zscore")
    assert m["n_items"] == 9 and m["n_quarantined"] == 1 and m["normalization"]["name"] == "zscore"
    c = ShardCorpus(tmp_path)
    assert len(c) == 9 and c.arrays == ("image", "label")
    assert list(c.index.columns[:3]) == ["id", "source", "split"]
    assert c.index[["shard", "offset"]].values.tolist()[3] == [1, 0]
    for i in range(9):
        j, k = divmod(i, 3)
        np.testing.assert_array_equal(c[i]["image"], data[j][0]["image"][k])
        assert c[i]["label"] == data[j][0]["label"][k]
    np.testing.assert_array_equal(c.get_batch([7, 0, 4]), np.stack([c[7]["image"], c[0]["image"], c[4]["image"]]))
    allimg = np.concatenate([d[0]["image"] for d in data])
    np.testing.assert_allclose(c.stats().mean, allimg.transpose(1, 0, 2, 3).reshape(2, -1).mean(1))
    c2 = pickle.loads(pickle.dumps(c))  # memory maps reopen lazily in DataLoader workers
    np.testing.assert_array_equal(c2[5]["image"], c[5]["image"])
    assert c.quarantine() == [{"id": "bad1", "reason": "x"}]
    with pytest.raises(IndexError):
        c[9]


def test_completeness_checks(tmp_path):
    w, _ = _write(tmp_path)
    assert all(w.is_complete(j, "checksum") for j in range(3))
    # truncated array file -> incomplete
    p = w.array_path(0, "image")
    p.write_bytes(p.read_bytes()[:-10])
    assert not w.is_complete(0)
    # same size, different bytes -> only the checksum notices
    p = w.array_path(1, "image")
    b = bytearray(p.read_bytes())
    b[-1] ^= 0xFF
    p.write_bytes(bytes(b))
    assert w.is_complete(1, "size") and not w.is_complete(1, "checksum")
    # missing sidecar (crash between arrays and sidecar) -> incomplete
    w.sidecar_path(2).unlink()
    assert not w.is_complete(2)
    # another parameter set (fingerprint) -> stale
    assert not ShardWriter(tmp_path, fingerprint="other").is_complete(1)
    with pytest.raises(RuntimeError, match="shard 0"):
        finalize_corpus(tmp_path, 3, {}, fingerprint="fp1")


def test_stale_temp_files_and_ownership(tmp_path):
    w = ShardWriter(tmp_path, fingerprint="fp", owned=[1])
    (w.shard_dir / ".shard-00001.image.npy.tmp-999").write_bytes(b"partial")
    (w.shard_dir / ".shard-00002.image.npy.tmp-999").write_bytes(b"someone else's")
    removed = w.clean_stale()
    assert [p.name for p in removed] == [".shard-00001.image.npy.tmp-999"]
    assert (w.shard_dir / ".shard-00002.image.npy.tmp-999").exists()
    arrays, rows, _ = _shard(0)
    with pytest.raises(ValueError, match="does not own"):
        w.write_shard(0, arrays, rows)
    with pytest.raises(ValueError, match="items"):
        w.write_shard(1, arrays, rows[:2])
    w.write_shard(1, arrays, rows)
    assert w.is_complete(1) and not any(p.name.startswith(".shard-00001") for p in w.shard_dir.iterdir())
