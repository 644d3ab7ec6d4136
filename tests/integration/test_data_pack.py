"""`spectralgpt data pack`: GeoTIFF trees into deterministic, resumable tar shards with an index beside each, that
the folder reader lists from the index (never trusted blindly) and reads in place."""

import hashlib
import io
import json
import logging
import os
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readers_fixtures import stack, write_tif  # noqa: E402

from spectralgpt.cli import app  # noqa: E402
from spectralgpt.data import BadSample, Reason, load_dataset  # noqa: E402
from spectralgpt.data.pack import index_path, pack, scan_tar, tar_members  # noqa: E402

ORDER = ("B2", "B3", "B4", "B8")
BANDS = ("B2", "B8")


def _tree(root: Path, n: int = 7) -> Path:
    for k in range(n):
        write_tif(root / f"region-{k % 3}" / f"img-{k:03d}.tif", stack(ORDER, 8, seed=k), descriptions=ORDER)
    (root / "README.txt").write_text("not an image")
    return root


def _tif_bytes(tmp: Path, seed: int) -> bytes:
    return write_tif(tmp / f"other-{seed}" / "x.tif", stack(ORDER, 8, seed=seed), descriptions=ORDER).read_bytes()


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _retar(path: Path, members: list[tuple[str, bytes]]) -> None:
    """Rewrite a tar in place with these members (the metadata `pack` uses): an edit made after packing."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tf.addfile(ti, io.BytesIO(data))


def _read_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tf:
        return [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """(source tree, packed folder): 7 GeoTIFFs in tars of 3 (3 tars, each with its index)."""
    tmp = tmp_path_factory.mktemp("pack")
    src = _tree(tmp / "src")
    pack(src, tmp / "tars", members=3)
    return src, tmp / "tars"


@pytest.fixture
def tars(packed, tmp_path) -> Path:
    """A private copy of the packed folder (tests edit it)."""
    return Path(shutil.copytree(packed[1], tmp_path / "tars"))


def test_pack_is_deterministic_resumable_and_indexed(tmp_path):
    src = _tree(tmp_path / "src")
    r = pack(src, tmp_path / "a", members=3)
    assert (len(r.tars), r.members, r.written, r.skipped, r.indexed) == (3, 7, 3, 0, 3)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        f"shard-{k:06d}.tar{s}" for k in range(3) for s in ("", ".index.json")]
    with tarfile.open(r.tars[0]) as tf:
        m = tf.getmembers()
    assert [x.name for x in m] == ["region-0/img-000.tif", "region-0/img-003.tif", "region-0/img-006.tif"]
    assert {(x.mtime, x.uid, x.gid, x.mode, x.uname) for x in m} == {(0, 0, 0, 0o644, "")}
    # the index holds what a header walk finds, and is what the listing uses
    head, body = Path(index_path(r.tars[0])).read_text().splitlines()
    assert json.loads(head)["sha256"] == hashlib.sha256(body.encode()).hexdigest()
    doc = json.loads(body)
    assert doc["tar_size"] == os.path.getsize(r.tars[0])
    assert [(row[0], row[2], row[3]) for row in doc["members"]] == [(x.name, x.offset_data, x.size) for x in m]
    for t in r.tars:
        assert tar_members(t) == (scan_tar(t)[0], True)

    for f in src.rglob("*.tif"):  # other mtimes and modes: the same bytes
        os.utime(f, (1e9, 1e9))
        os.chmod(f, 0o600)
    pack(src, tmp_path / "b", members=3)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    again = pack(src, tmp_path / "a", members=3)
    assert (again.written, again.skipped, again.indexed) == (0, 3, 0)

    # resume: a truncated tar is rewritten, an interrupted run's temporary file removed, a lost index rewritten
    last = Path(r.tars[-1])
    last.write_bytes(last.read_bytes()[:700])
    (tmp_path / "a" / ".shard-000002.tar.k3x_9a.tmp").write_bytes(b"half a tar")
    os.unlink(index_path(r.tars[0]))
    again = pack(src, tmp_path / "a", members=3)
    assert (again.written, again.skipped, again.indexed) == (1, 2, 1)  # the rewritten tar's index was right
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")

    # reuse is earned by content: a source rewritten with other pixels, same size, rewrites its tar only
    f = src / "region-1" / "img-004.tif"
    size = f.stat().st_size
    write_tif(f, stack(ORDER, 8, seed=99), descriptions=ORDER)
    assert f.stat().st_size == size
    again = pack(src, tmp_path / "a", members=3)
    assert (again.written, again.skipped, again.indexed) == (1, 2, 0)  # same names and sizes: same index
    assert _read_members(Path(r.tars[1]))[1] == ("region-1/img-004.tif", f.read_bytes())

    ds = load_dataset("folder", tmp_path / "a", bands=BANDS)
    loose = load_dataset("folder", src, bands=BANDS)
    assert len(ds) == 7 and ds.ids[0] == "shard-000000/region-0/img-000"
    for i in range(7):
        assert np.array_equal(ds[i].image, loose[i].image)


def test_tars_without_an_index_or_with_a_damaged_one_are_walked(packed, tars, tmp_path, caplog):
    src, _ = packed
    want = load_dataset("folder", tars, bands=BANDS)
    for t in sorted(tars.glob("*.tar")):  # as packed by another tool
        os.unlink(index_path(t))
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("folder", tars, bands=BANDS)
    assert ds.ids == want.ids and not _warnings(caplog)
    assert np.array_equal(ds[3].image, want[3].image)
    assert tar_members(tars / "shard-000000.tar")[1] is False

    pack(src, tars, members=3)  # indexes back; then one damaged (a byte of its body changed)
    ipath = Path(index_path(tars / "shard-000001.tar"))
    ipath.write_bytes(ipath.read_bytes().replace(b"img-004", b"img-005"))
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("folder", tars, bands=BANDS)
    assert ds.ids == want.ids
    assert any("shard-000001.tar" in w and "digest does not match" in w for w in _warnings(caplog))
    # an index with a right digest but absurd offsets (hostile, or from a bug) is refused before any big read
    body = json.loads(ipath.read_text().splitlines()[1])
    body["members"][0][2] = 10**15
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    ipath.write_text(json.dumps({"format": "spectralgpt-tar-index", "version": 1,
                                 "sha256": hashlib.sha256(text.encode()).hexdigest()}) + "\n" + text + "\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_dataset("folder", tars, bands=BANDS).ids == want.ids
    assert any("does not start where the previous one ends" in w for w in _warnings(caplog))

    # a tar from elsewhere: a folder entry, a text member, no index
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w") as tf:
        d = tarfile.TarInfo("scenes")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        tf.add(src / "region-0" / "img-000.tif", "scenes/x.tif")
        tf.add(src / "README.txt", "scenes/README.txt")
    ds = load_dataset("folder", other, bands=BANDS)
    assert ds.ids == ["scenes/x"] and np.array_equal(ds[0].image, want[0].image)


def test_a_member_replaced_after_packing_is_detected(tars, tmp_path, caplog):
    t = tars / "shard-000000.tar"
    members = _read_members(t)
    new = _tif_bytes(tmp_path, seed=42) + b"\0"  # other pixels, one byte longer: the tar keeps its size
    assert len(new) != len(members[1][1]) and len(new) % 512 and len(members[1][1]) % 512
    size = t.stat().st_size
    _retar(t, [members[0], (members[1][0], new), members[2]])
    assert t.stat().st_size == size  # the size check alone would not see it: the member's header does
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("folder", tars, bands=BANDS)
    assert any("header of member 'region-0/img-003.tif'" in w for w in _warnings(caplog))
    i = ds.ids.index("shard-000000/region-0/img-003")
    expect = load_dataset("folder", tmp_path / "other-42", bands=BANDS)[0].image
    assert len(ds) == 7 and np.array_equal(ds[i].image, expect)


def test_a_member_overwritten_in_place_is_read_as_it_is_now(packed, tars, tmp_path, caplog):
    """Same size, other bytes: the headers (and so the index) still hold; the read gives the new pixels, and
    pack rewrites the tar from its sources."""
    src, _ = packed
    t = tars / "shard-000002.tar"
    (m,) = tar_members(t)[0]
    new = _tif_bytes(tmp_path, seed=7)
    assert len(new) == m.size
    with open(t, "r+b") as f:
        f.seek(m.offset)
        f.write(new)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("folder", tars, bands=BANDS)
        assert tar_members(t)[1] is True
        assert np.array_equal(ds[6].image, load_dataset("folder", tmp_path / "other-7", bands=BANDS)[0].image)
    assert not _warnings(caplog)
    again = pack(src, tars, members=3)
    assert (again.written, again.skipped) == (1, 2)
    assert _read_members(t)[0][1] == (src / m.name).read_bytes()


def test_a_tar_repacked_with_other_members_is_listed_as_it_is(tars, caplog):
    t = tars / "shard-000001.tar"
    members = _read_members(t)
    renamed = [(name.replace("region-", "zone-ab"), data) for name, data in members]  # same name lengths
    size = t.stat().st_size
    _retar(t, renamed)
    assert t.stat().st_size == size
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("folder", tars, bands=BANDS)
    assert any("shard-000001.tar" in w and "header walk" in w for w in _warnings(caplog))
    ids = [i for i in ds.ids if i.startswith("shard-000001/")]
    assert ids == sorted(f"shard-000001/{os.path.splitext(n)[0]}" for n, _ in renamed)
    assert ds[ds.ids.index(ids[0])].image.shape == (2, 8, 8)


def test_a_tar_changed_between_listing_and_reading(tars, caplog):
    ds = load_dataset("folder", tars, bands=BANDS)  # listed from the indexes; nothing read yet
    want = {i: ds[k].image for k, i in enumerate(ds.ids) if not i.startswith("shard-000000/")}
    t = tars / "shard-000000.tar"
    m0, m1, m2 = _read_members(t)
    first = load_dataset("folder", t, bands=BANDS)  # its members' pixels, read before the change
    expect0, expect2 = first[0].image, first[2].image
    _retar(t, [m2, m0])  # another order, one member gone
    with caplog.at_level(logging.WARNING):
        ds.check(ds.ids.index("shard-000000/region-0/img-000"))  # ingest's cheap checks see the change too
        with pytest.raises(BadSample, match="no longer in it"):
            ds.check(ds.ids.index("shard-000000/region-0/img-003"))
        assert np.array_equal(ds[ds.ids.index("shard-000000/region-0/img-000")].image, expect0)
        with pytest.raises(BadSample) as e:
            ds[ds.ids.index("shard-000000/region-0/img-003")]
        assert np.array_equal(ds[ds.ids.index("shard-000000/region-0/img-006")].image, expect2)
    assert e.value.reason == Reason.MISSING_FILE and "no longer in it" in str(e.value)
    assert sum("changed after it was listed" in w for w in _warnings(caplog)) == 1  # one walk serves the rest
    for k, i in enumerate(ds.ids):
        if i in want:
            assert np.array_equal(ds[k].image, want[i])
    _retar(t, [("region-0/img-000.tif", b"<html>not found</html>"), m2])  # changed again, a member now broken
    with pytest.raises(BadSample) as e:
        ds[ds.ids.index("shard-000000/region-0/img-000")]
    assert e.value.reason == Reason.NOT_GEOTIFF and e.value.source == ds.source(0)
    assert "spectralgpt-member-" not in str(e.value) and ds.source(0) in str(e.value)


def test_cli_pack(tmp_path):
    src = _tree(tmp_path / "src", 4)
    out = CliRunner().invoke(app, ["data", "pack", str(src), str(tmp_path / "tars"), "--members", "2"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["tars"] == 2
    again = CliRunner().invoke(app, ["data", "pack", str(src), str(tmp_path / "tars"), "--members", "2"])
    assert json.loads(again.output)["skipped"] == 2 and json.loads(again.output)["indexes_written"] == 0
