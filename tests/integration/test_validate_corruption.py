"""The corruption battery: every kind of broken input is quarantined with its own reason, nothing crashes,
and the good files around them are kept."""

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readers_fixtures import EUROSAT_ORDER, make_ben_patch, make_eurosat, stack, write_tif  # noqa: E402

from spectralgpt.bands import PRETRAIN_BANDS  # noqa: E402
from spectralgpt.data import QuarantineError, load_dataset, scan  # noqa: E402

CHECKS = dict(bands=PRETRAIN_BANDS, size=64, dtype="uint16")


@pytest.fixture
def eurosat_battery(tmp_path):
    root = tmp_path / "eurosat"
    good = make_eurosat(root, ("Forest", "River", "Pasture"), n=2)  # 6 good files
    data = good[0].read_bytes()
    (root / "Forest" / "Forest_7.tif").write_bytes(data[: len(data) // 2])  # truncated
    (root / "River" / "River_7.tif").write_text("this is not a GeoTIFF\n")  # text named .tif
    write_tif(root / "Forest" / "Forest_8.tif", stack(EUROSAT_ORDER, 32))  # wrong size
    write_tif(root / "River" / "River_8.tif", stack(EUROSAT_ORDER, 64).astype("int32"))  # wrong dtype
    nan = stack(EUROSAT_ORDER, 64).astype("float32")
    nan[3, 5, 5] = np.nan
    write_tif(root / "Pasture" / "Pasture_7.tif", nan)  # NaN
    write_tif(root / "Pasture" / "Pasture_8.tif", np.zeros((13, 64, 64), np.uint16))  # all nodata
    write_tif(root / "Pasture" / "Pasture_9.tif", np.full((13, 64, 64), 777, np.uint16))  # constant
    write_tif(root / "Forest" / "Forest_9.tif", stack(EUROSAT_ORDER[:12], 64))  # a band missing
    write_tif(root / "Clouds" / "Clouds_1.tif", stack(EUROSAT_ORDER, 64))  # unknown class folder
    outside = tmp_path / "elsewhere" / "Forest"
    outside.mkdir(parents=True)
    shutil.copy(good[0], outside / "Forest_1.tif")
    names = [p.name for p in sorted(root.rglob("*.tif"))]
    names += ["River_1.tif", "../elsewhere/Forest/Forest_1.tif", "Forest/Forest_99.tif"]  # duplicate, escape, absent
    (root / "eurosat-train.txt").write_text("\n".join(names) + "\n")
    return root


EXPECTED = {
    "Forest_7": "truncated",
    "River_7": "not_geotiff",
    "Forest_8": "wrong_size",
    "River_8": "wrong_dtype",
    "Pasture_7": "nan_inf",
    "Pasture_8": "all_nodata",
    "Pasture_9": "constant",
    "Forest_9": "missing_bands",
    "Clouds_1": "unknown_label",
    "River_1": "duplicate_id",
    "Forest_1": "outside_root",
    "Forest_99": "missing_file",
}


def _check(good, q, ds):
    assert {ds.ids[i] for i in good} == {"Forest_1", "Forest_2", "River_1", "River_2", "Pasture_1", "Pasture_2"}
    got = {(r.id, r.reason) for r in q}
    assert got == set(EXPECTED.items())
    for r in q:
        assert r.path and r.message and r.reason in r.message


def test_eurosat_battery_quarantined_with_the_right_reasons(eurosat_battery, tmp_path):
    ds = load_dataset("eurosat", eurosat_battery, split="train")
    assert len(ds) == 18
    good, q = scan(ds, max_bad_fraction=None, report=tmp_path / "reports" / "quarantine.json", **CHECKS)
    _check(good, q, ds)
    assert q.total == 18 and sum(q.counts().values()) == 12 and len(set(q.counts())) == 12
    d = json.loads((tmp_path / "reports" / "quarantine.json").read_text())
    assert d["bad"] == 12 and d["total"] == 18 and d["counts"]["truncated"] == 1
    rows = list(csv.DictReader(open(tmp_path / "reports" / "quarantine.csv")))
    assert {(r["id"], r["reason"]) for r in rows} == set(EXPECTED.items())
    assert not list((tmp_path / "reports").glob(".*tmp"))  # no temporary files left behind


def test_scan_in_a_process_pool_gives_the_same_answer(eurosat_battery):
    ds = load_dataset("eurosat", eurosat_battery, split="train")
    good1, q1 = scan(ds, max_bad_fraction=None, **CHECKS)
    good2, q2 = scan(ds, max_bad_fraction=None, workers=2, chunk_size=5, **CHECKS)
    assert good1 == good2 and [(r.id, r.reason) for r in q1] == [(r.id, r.reason) for r in q2]


def test_scan_fails_over_the_limit_naming_the_report(eurosat_battery, tmp_path):
    ds = load_dataset("eurosat", eurosat_battery, split="train")
    report = tmp_path / "q.json"
    with pytest.raises(QuarantineError) as e:
        scan(ds, max_bad_fraction=0.05, report=report, **CHECKS)
    msg = str(e.value)
    assert str(report) in msg and "12 bad of 18" in msg and "truncated=1" in msg
    assert report.exists() and e.value.quarantine.total == 18
    good, q = scan(ds, max_bad_fraction=0.7, **CHECKS)  # under the limit: no error
    assert len(good) == 6


def test_bigearthnet_battery(tmp_path):
    for n in ("G1", "G2", "G3"):
        make_ben_patch(tmp_path, n, labels=("Pastures", "Peatbogs"))
    make_ben_patch(tmp_path, "MissingBand", skip=("B05",))
    d = make_ben_patch(tmp_path, "BadJson")
    (d / "BadJson_labels_metadata.json").write_text('{"labels": ["Pastures", ')
    make_ben_patch(tmp_path, "NoLabelsKey")
    (tmp_path / "NoLabelsKey" / "NoLabelsKey_labels_metadata.json").write_text('{"tags": []}')
    make_ben_patch(tmp_path, "Unknown", labels=("Pastures", "Lunar regolith"))
    d = make_ben_patch(tmp_path, "Truncated")
    b = (d / "Truncated_B8A.tif").read_bytes()
    (d / "Truncated_B8A.tif").write_bytes(b[:100])
    ds = load_dataset("bigearthnet", tmp_path)
    good, q = scan(ds, max_bad_fraction=None, size=120, dtype="uint16")
    assert [ds.ids[i] for i in good] == ["G1", "G2", "G3"]
    assert {(r.id, r.reason) for r in q} == {
        ("MissingBand", "missing_bands"), ("BadJson", "bad_label"), ("NoLabelsKey", "bad_label"),
        ("Unknown", "unknown_label"), ("Truncated", "truncated"),
    }
    assert "B5" in next(r.message for r in q if r.id == "MissingBand")
    assert "Lunar regolith" in next(r.message for r in q if r.id == "Unknown")


def _stage_params(tmp_path, root, max_bad_fraction):
    from spectralgpt.config import (DataConfig, IngestConfig, Params, PreprocessConfig, PretrainConfig, PretrainStage,
                                    SourceConfig)

    return Params(data=DataConfig(interim=str(tmp_path / "interim"), shards=str(tmp_path / "shards"),
                                  sources={"classification": SourceConfig(kind="eurosat", root=str(root),
                                                                                 split="train")}),
                  ingest=IngestConfig(workers=1, max_bad_fraction=max_bad_fraction),
                  preprocess=PreprocessConfig(size=64, shard_size=4, workers=2),
                  pretrain=PretrainConfig(stages=[PretrainStage(name="s", img_size=64, epochs=1)]))


def test_stages_decode_once_and_report_what_scan_reports(eurosat_battery, tmp_path):
    """Ingest refuses what its cheap checks see (listing problems, a missing file, a header that is no GeoTIFF),
    the preprocessing workers what decoding shows; the merged report is the one `scan` writes from one pass."""
    from spectralgpt.stages.ingest import ingest
    from spectralgpt.stages.preprocess import preprocess_all

    params = _stage_params(tmp_path, eurosat_battery, 0.7)
    manifest = ingest(params)["classification"]
    cheap = {r["id"]: r["reason"] for r in manifest["refused"]}
    # a text file named .tif, an unknown class folder, a duplicate, an escaping and an absent list entry; the
    # half-written Forest_7 has a readable header: its truncation shows when its pixels are decoded
    assert cheap == {k: EXPECTED[k] for k in ("River_7", "Clouds_1", "River_1", "Forest_1", "Forest_99")}
    assert manifest["n_listed"] == 18 and manifest["n_good"] == 18 - len(cheap)
    preprocess_all(params)
    ds = load_dataset("eurosat", eurosat_battery, split="train")
    scan(ds, max_bad_fraction=None, report=tmp_path / "scan" / "quarantine.json")
    for ext in ("json", "csv"):  # the same records, reasons, messages, order and format
        assert (tmp_path / f"shards/quarantine/classification.{ext}").read_text() == \
            (tmp_path / f"scan/quarantine.{ext}").read_text()
    d = json.loads((tmp_path / "shards/quarantine/classification.json").read_text())
    assert d["total"] == 18 and {r["id"] for r in d["samples"]} >= set(cheap) | {"Pasture_7", "Pasture_9"}


def test_stages_refuse_over_the_limit_naming_the_report(eurosat_battery, tmp_path):
    from spectralgpt.stages.ingest import ingest
    from spectralgpt.stages.preprocess import preprocess_all

    # the cheap checks alone refuse more than 5%: ingest stops before anything is decoded
    with pytest.raises(QuarantineError, match=r"bad of 18 .* more than the allowed 5.0%.*manifest.json"):
        ingest(_stage_params(tmp_path / "a", eurosat_battery, 0.05))
    # they refuse 5 of 18, decoding 5 more (truncated, NaN, all-nodata, constant, a missing band): over 45%
    params = _stage_params(tmp_path / "b", eurosat_battery, 0.45)
    ingest(params)
    with pytest.raises(QuarantineError, match=r"10 bad of 18 .*report: .*classification.json") as e:
        preprocess_all(params)
    assert e.value.quarantine.counts()["nan_inf"] == 1 and (tmp_path / "b/shards/quarantine/classification.csv").exists()
