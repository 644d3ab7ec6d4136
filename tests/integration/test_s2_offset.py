"""Sentinel-2 processing baseline 04.00 (+1000 DN since 25 January 2022): a SAFE product's MTD_MSIL*.xml offsets
are subtracted on reading, a bare GeoTIFF takes an explicit offset, and what was applied is recorded with the
shard corpus and the prediction."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_helpers import save_tiny, scene_array, write_band_folder, write_scene  # noqa: E402

from spectralgpt.bands import PRETRAIN_BANDS  # noqa: E402
from spectralgpt.data import load_dataset  # noqa: E402
from spectralgpt.data.normalize import BandStats, make_recipe  # noqa: E402
from spectralgpt.data.preprocess import preprocess  # noqa: E402
from spectralgpt.inference import Predictor  # noqa: E402
from spectralgpt.inference.scene import predict_scene  # noqa: E402
from spectralgpt.inference.scene_io import open_scene  # noqa: E402
from spectralgpt.io import s2offset  # noqa: E402
from rasterio.windows import Window  # noqa: E402

SAFE = "S2B_MSIL2A_20230601T103629_N0509_R008_T31UDQ_20230601T134500.SAFE"
GRANULE = "GRANULE/L2A_T31UDQ_A032500_20230601T103629/IMG_DATA/R10m"


def mtd(level: str = "2A", baseline: str = "05.09", offset: int = -1000) -> str:
    """A product metadata file as ESA writes it (namespaced; only the elements the reader looks at)."""
    tag, lst = (("BOA_ADD_OFFSET", "BOA_ADD_OFFSET_VALUES_LIST") if level == "2A"
                else ("RADIO_ADD_OFFSET", "Radiometric_Offset_List"))
    rows = "".join(f'<{tag} band_id="{k}">{offset}</{tag}>' for k in range(13))
    return (f'<?xml version="1.0" encoding="UTF-8"?><n1:Level-{level}_User_Product '
            f'xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{level}.xsd"><n1:General_Info>'
            f"<Product_Info><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE></Product_Info>"
            f"<Product_Image_Characteristics><{lst}>{rows}</{lst}></Product_Image_Characteristics>"
            f"</n1:General_Info></n1:Level-{level}_User_Product>")


@pytest.fixture
def scenes(tmp_path):
    """The same scene as processed before 2022 (band files, multi-band tif) and after (+1000 in a SAFE)."""
    old = scene_array(64, 64, seed=3)
    old[:, :4, :4] = 7  # dark water: below the offset once the offset is removed
    new = old + np.uint16(1000)
    safe = tmp_path / "new" / SAFE
    safe.mkdir(parents=True)
    (safe / "MTD_MSIL2A.xml").write_text(mtd("2A"))
    write_band_folder(safe / GRANULE, new, prefix="T31UDQ_20230601T103629")
    write_band_folder(tmp_path / "old" / "bands", old, prefix="T31UDQ_20210601T103629")
    for d in ("old/tifs", "bare", f"tree/{SAFE}/GRANULE"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    (tmp_path / "tree" / SAFE / "MTD_MSIL2A.xml").write_text(mtd("2A"))
    write_scene(tmp_path / "old" / "tifs" / "scene.tif", old)
    write_scene(tmp_path / "tree" / SAFE / "GRANULE" / "scene.tif", new)
    write_scene(tmp_path / "bare" / "scene.tif", new)
    return tmp_path, old


def test_metadata_offsets_l1c_and_l2a(tmp_path):
    for level in ("1C", "2A"):
        p = tmp_path / f"MTD_MSIL{level}.xml"
        p.write_text(mtd(level, "04.00"))
        got = s2offset.read_product_offsets(p)
        assert got["baseline"] == "04.00" and got["offsets"] == {b: 1000 for b in s2offset.BAND_IDS.values()}
        assert got["offsets"]["B8A"] == 1000
    old = tmp_path / "old" / "MTD_MSIL1C.xml"
    old.parent.mkdir()
    old.write_text(mtd("1C", "02.09").replace("RADIO_ADD_OFFSET", "X"))  # pre-2022: no offsets declared
    assert s2offset.resolve(old.parent, PRETRAIN_BANDS)["offsets"] == {}
    (tmp_path / "evil" / "MTD_MSIL1C.xml").parent.mkdir()
    (tmp_path / "evil" / "MTD_MSIL1C.xml").write_text('<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
    with pytest.raises(ValueError, match="DOCTYPE"):
        s2offset.resolve(tmp_path / "evil", PRETRAIN_BANDS)
    assert s2offset.harmonize(np.array([[0, 500, 1000, 1007]], np.uint16), ["B2"], {"B2": 1000}).tolist() == [
        [0, 0, 0, 7]]
    with pytest.raises(ValueError, match="offset=-5"):
        s2offset.check_option(-5)


def test_safe_product_reads_as_the_pre_2022_scene(scenes):
    root, old = scenes
    stats = BandStats(12)
    stats.update(old.astype(np.float64))
    zscore = make_recipe("zscore", stats)
    full = Window(0, 0, 64, 64)
    with open_scene(root / "new" / SAFE) as new, open_scene(root / "old" / "bands") as ref:
        assert new.harmonization["baseline"] == "05.09" and s2offset.summary(new.harmonization) == 1000
        a, b = new.read(full, PRETRAIN_BANDS), ref.read(full, PRETRAIN_BANDS)
        assert np.array_equal(a, old) and np.array_equal(zscore(a), zscore(b))
    with open_scene(root / "new" / SAFE, offset="none") as raw:
        assert not np.allclose(zscore(raw.read(full, PRETRAIN_BANDS)), zscore(b))
    with open_scene(root / "bare" / "scene.tif", offset=1000) as bare:
        assert np.array_equal(bare.read(full, PRETRAIN_BANDS), old)


def test_datasets_harmonise_and_the_shard_manifest_records_it(scenes, tmp_path):
    root, old = scenes
    new = load_dataset("folder", root / "tree")
    assert new.ids == [f"{SAFE}/GRANULE/scene"]
    s = new[0]
    assert np.array_equal(s.image, old) and s.meta["dn_offset"] == 1000
    assert s.meta["dn_offset_source"].endswith("MTD_MSIL2A.xml")
    assert np.array_equal(load_dataset("folder", root / "bare", offset=1000)[0].image, old)
    assert not np.array_equal(load_dataset("folder", root / "bare")[0].image, old)  # auto: a bare tif has none
    assert np.array_equal(load_dataset("folder", root / "old" / "tifs")[0].image, old)
    out = preprocess(new, tmp_path / "shards", size=32, shard_size=4, workers=1, bands=PRETRAIN_BANDS)
    assert out.manifest["dn_offsets"] == {"1000": out.n_items}
    assert set(pd.read_parquet(tmp_path / "shards" / "index.parquet")["dn_offset"]) == {"1000"}
    ref = preprocess(load_dataset("folder", root / "old" / "tifs"), tmp_path / "ref", size=32, shard_size=4,
                     workers=1, bands=PRETRAIN_BANDS)
    assert "dn_offsets" not in ref.manifest
    assert out.manifest["stats"] == ref.manifest["stats"]


def test_prediction_of_a_04_00_product_equals_the_old_scene_and_says_so(scenes, tmp_path):
    root, _ = scenes
    model = Predictor.load(save_tiny(tmp_path / "m", "seg_vit_tiny_patch8_64", "segmentation", ["a", "b"]),
                           device="cpu", precision="fp32")
    outs = {}
    for name, path, offset in (("old", root / "old" / "bands", "auto"), ("safe", root / "new" / SAFE, "auto"),
                               ("bare", root / "bare" / "scene.tif", 1000)):
        outs[name] = tmp_path / f"{name}.tif"
        predict_scene(model, path, outs[name], progress=False, offset=offset)
    with rasterio.open(outs["old"]) as a, rasterio.open(outs["safe"]) as b, rasterio.open(outs["bare"]) as c:
        assert np.array_equal(a.read(), b.read()) and np.array_equal(a.read(), c.read())
        assert json.loads(a.tags()["SPECTRALGPT_DN_OFFSET"])["offset"] is None
        tag = json.loads(b.tags()["SPECTRALGPT_DN_OFFSET"])
        assert tag["offset"] == 1000 and tag["source"].endswith("MTD_MSIL2A.xml") and tag["baseline"] == "05.09"
        assert json.loads(c.tags()["SPECTRALGPT_DN_OFFSET"]) == {"offset": 1000, "source": "option",
                                                                 "baseline": None}
