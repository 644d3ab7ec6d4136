"""`spectralgpt data pack`: GeoTIFF trees into deterministic, resumable tar shards that the folder reader reads
in place."""

import hashlib
import json
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readers_fixtures import stack, write_tif  # noqa: E402

from spectralgpt.cli import app  # noqa: E402
from spectralgpt.data import load_dataset  # noqa: E402
from spectralgpt.data.pack import pack  # noqa: E402

ORDER = ("B2", "B3", "B4", "B8")


def _tree(root: Path, n: int = 7) -> Path:
    for k in range(n):
        write_tif(root / f"region-{k % 3}" / f"img-{k:03d}.tif", stack(ORDER, 8, seed=k), descriptions=ORDER)
    (root / "README.txt").write_text("not an image")
    return root


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))}


def test_pack_is_deterministic_resumable_and_readable(tmp_path):
    src = _tree(tmp_path / "src")
    r = pack(src, tmp_path / "a", members=3)
    assert (len(r.tars), r.members, r.written, r.skipped) == (3, 7, 3, 0)
    with tarfile.open(r.tars[0]) as tf:
        m = tf.getmembers()
    assert [x.name for x in m] == ["region-0/img-000.tif", "region-0/img-003.tif", "region-0/img-006.tif"]
    assert {(x.mtime, x.uid, x.gid, x.mode, x.uname) for x in m} == {(0, 0, 0, 0o644, "")}
    for f in src.rglob("*.tif"):  # other mtimes and modes: the same bytes
        os.utime(f, (1e9, 1e9))
        os.chmod(f, 0o600)
    pack(src, tmp_path / "b", members=3)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    # resume: a truncated tar is rewritten, the finished ones are skipped
    last = Path(r.tars[-1])
    last.write_bytes(last.read_bytes()[:700])
    again = pack(src, tmp_path / "a", members=3)
    assert (again.written, again.skipped) == (1, 2) and _digests(tmp_path / "a") == _digests(tmp_path / "b")
    ds = load_dataset("folder", tmp_path / "a", bands=("B2", "B8"))
    assert len(ds) == 7 and ds.ids[0] == "shard-000000/region-0/img-000"
    assert np.array_equal(ds[0].image, load_dataset("folder", src, bands=("B2", "B8"))[0].image)


def test_cli_pack(tmp_path):
    src = _tree(tmp_path / "src", 4)
    out = CliRunner().invoke(app, ["data", "pack", str(src), str(tmp_path / "tars"), "--members", "2"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["tars"] == 2
    again = CliRunner().invoke(app, ["data", "pack", str(src), str(tmp_path / "tars"), "--members", "2"])
    assert json.loads(again.output)["skipped"] == 2
