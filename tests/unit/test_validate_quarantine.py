"""check_sample, the Quarantine report and scan on in-memory samples."""

import json

import numpy as np
import pytest

from spectralgpt.data import BadSample, Quarantine, QuarantineError, Sample, check_sample, scan
from spectralgpt.data.validate import precheck
from spectralgpt.data.sample import Reason
from spectralgpt.io.atomic import atomic_open, atomic_write_text
from spectralgpt.io.raster import fill_missing_bands, iter_windows

BANDS = ("B2", "B3", "B4")


def _sample(image=None, sid="s", **kw):
    if image is None:
        image = np.random.default_rng(0).integers(1, 1000, (3, 8, 8)).astype(np.uint16)
    return Sample(id=sid, image=image, bands=kw.pop("bands", BANDS), source=f"/d/{sid}.tif", **kw)


def _reason(s, **checks):
    with pytest.raises(BadSample) as e:
        check_sample(s, **checks)
    assert e.value.sample_id == s.id and e.value.source == s.source
    return e.value.reason


def test_check_sample_accepts_a_good_sample():
    s = _sample(label=np.zeros((8, 8), np.int64), image2=np.ones((3, 8, 8), np.uint16))
    assert check_sample(s, bands=BANDS, size=8, dtype="uint16") is s
    check_sample(s, size=(8, 8), dtype=("uint16", "int16"))


def test_check_sample_reasons():
    good = _sample().image
    assert _reason(_sample(), bands=("B2", "B3", "B8")) == Reason.MISSING_BANDS
    assert _reason(_sample(), size=16) == Reason.WRONG_SIZE
    assert _reason(_sample(good[:2])) == Reason.WRONG_SIZE  # 2 planes, 3 band names
    assert _reason(_sample(image2=good[:, :4])) == Reason.WRONG_SIZE
    assert _reason(_sample(label=np.zeros((4, 4)))) == Reason.WRONG_SIZE
    assert _reason(_sample(), dtype="int16") == Reason.WRONG_DTYPE
    f = good.astype(np.float32)
    f[0, 0, 0] = np.inf
    assert _reason(_sample(f)) == Reason.NAN_INF
    assert _reason(_sample(np.zeros((3, 8, 8), np.uint16))) == Reason.ALL_NODATA
    assert _reason(_sample(np.full((3, 8, 8), -9999, np.int16), meta={"nodata": -9999})) == Reason.ALL_NODATA
    assert _reason(_sample(np.full((3, 8, 8), 7, np.uint16))) == Reason.CONSTANT
    assert _reason(_sample(label=np.array([0, 2, 1], np.float32))) == Reason.BAD_LABEL


def test_quarantine_reports_are_written_atomically_and_read_back(tmp_path):
    q = Quarantine(total=10, name="demo")
    q.add("a", "/d/a.tif", Reason.TRUNCATED, "half a file")
    q.add("b", "/d/b.tif", Reason.TRUNCATED, "half a file, with a comma")
    q.add_error(BadSample(Reason.NAN_INF, "NaN", "/d/c.tif", "c"))
    assert q.counts() == {"nan_inf": 1, "truncated": 2} and q.bad_fraction == pytest.approx(0.3)
    p = q.to_json(tmp_path / "r" / "q.json")
    q.to_csv(tmp_path / "r" / "q.csv")
    assert json.loads(open(p).read())["counts"] == {"nan_inf": 1, "truncated": 2}
    back = Quarantine.from_json(p)
    assert [(r.id, r.reason) for r in back] == [("a", "truncated"), ("b", "truncated"), ("c", "nan_inf")]
    assert "with a comma" in (tmp_path / "r" / "q.csv").read_text()
    q.fail_if_over(0.3)
    with pytest.raises(QuarantineError, match=r"3 bad of 10 .*truncated=2.*report: .*q.json"):
        q.fail_if_over(0.2)
    assert sorted(x.name for x in (tmp_path / "r").iterdir()) == ["q.csv", "q.json"]


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    p = tmp_path / "x.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write("new, half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["x.txt"]


class _Flaky:
    """A plain sequence (no ids/source): one duplicate, one BadSample, one unexpected error."""

    def __init__(self):
        self.items = [_sample(sid="a"), _sample(sid="b"), _sample(sid="a"), "bad", "boom", _sample(sid="c")]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        x = self.items[i]
        if x == "bad":
            raise BadSample(Reason.MISSING_FILE, "gone", "/d/gone.tif", "g")
        if x == "boom":
            raise ZeroDivisionError("a bug in a reader")
        return x


def test_scan_keeps_going_on_any_sequence():
    good, q = scan(_Flaky(), max_bad_fraction=None)
    assert good == [0, 1, 5]
    assert [(r.id, r.reason) for r in q] == [("a", "duplicate_id"), ("g", "missing_file"), ("4", "unreadable")]
    assert "ZeroDivisionError" in q.records[-1].message
    with pytest.raises(QuarantineError):
        scan(_Flaky(), max_bad_fraction=0.1)


def test_fill_missing_and_windows():
    a = np.stack([np.full((2, 2), v, np.int16) for v in (1, 2, 4)])
    out = fill_missing_bands(a, ("B2", "B3", "B4"), ("B1", "B4"))
    assert out[:, 0, 0].tolist() == [2, 4] and out.dtype == np.int16
    wins = list(iter_windows(100, 50, 32, stride=16))
    assert {(w.row_off, w.col_off) for w in wins} >= {(68, 18), (0, 0)}
    assert all(w.row_off + w.height <= 100 and w.col_off + w.width <= 50 for w in wins)


class _Listed:
    """A listed dataset with cheap checks: ids, sources and splits known without reading, `check(i)` refusing a
    few samples; reading a sample here would be an error (precheck must not decode)."""

    kind = "listed"

    def __init__(self, n=10):
        self.ids = [f"s{i}" for i in range(n)]
        self.splits = ["train" if i % 3 else "val" for i in range(n)]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        raise AssertionError("precheck decoded a sample")

    def source(self, i):
        return f"/d/s{i}.tif"

    def check(self, i):
        if i == 2:
            raise BadSample(Reason.NOT_GEOTIFF, "not a GeoTIFF", f"/d/s{i}.tif", f"s{i}")
        if i == 7:
            raise OSError("permission denied")


def test_precheck_decodes_nothing_and_splits_into_ranges(tmp_path):
    ds = _Listed()
    good, q = found = precheck(ds, report=tmp_path / "pre.json")
    assert good == [0, 1, 3, 4, 5, 6, 8, 9] and found.splits == [ds.splits[i] for i in good]
    assert [(r.id, r.path, r.reason) for r in q] == [("s2", "/d/s2.tif", "not_geotiff"),
                                                     ("s7", "/d/s7.tif", "unreadable")]
    assert "OSError: permission denied" in q.records[1].message and q.total == 10
    assert Quarantine.from_json(tmp_path / "pre.json").ids == ["s2", "s7"] and (tmp_path / "pre.csv").exists()
    part = precheck(ds, ranges=[(0, 3), (6, 10)])  # one task's share: its records, the whole corpus' total
    assert part.good == [0, 1, 6, 8, 9] and [r[0] for r in part.records] == [2, 7] and part.quarantine.total == 10
    with pytest.raises(QuarantineError, match="2 bad of 10"):
        precheck(ds, max_bad_fraction=0.1)


def test_a_bad_sample_survives_pickling_with_its_fields():
    """A process pool or a Dask worker sends an exception back pickled: it must arrive as the same BadSample."""
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    e = BadSample(Reason.TRUNCATED, "ends after 12 of 40 strips", source="/d/x.tif", sample_id="x")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is BadSample and str(back) == str(e)
    assert (back.reason, back.message, back.source, back.sample_id) == (e.reason, e.message, e.source, e.sample_id)
    with ProcessPoolExecutor(1) as pool, pytest.raises(BadSample) as raised:
        pool.submit(_raise_bad_sample).result()
    assert raised.value.reason == Reason.NOT_GEOTIFF and raised.value.sample_id == "y"


def _raise_bad_sample():
    raise BadSample(Reason.NOT_GEOTIFF, "an HTML page", source="/d/y.tif", sample_id="y")
