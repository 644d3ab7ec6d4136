"""Scene prediction over real Sentinel-2 files (random-weight tiny models: the point is georeferencing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from inference_helpers import save_tiny

from spectralgpt.inference import Predictor, predict_scene
from spectralgpt.inference.scene import NODATA

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real Sentinel-2 samples not found at {REAL}")


def test_sen1floods11_chip_segmentation_keeps_the_grid(tmp_path):
    chip = next((REAL / "sen1floods11").glob("*_S2Hand.tif"))
    p = Predictor.load(save_tiny(tmp_path / "seg", "seg_vit_tiny_patch8_64", "segmentation", ["land", "water"]))
    out = tmp_path / "water.tif"
    r = predict_scene(p, chip, out, overlap=0.25, batch_size=16, progress=False)
    with rasterio.open(chip) as src, rasterio.open(out) as dst:
        assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
        assert dst.crs.to_epsg() == 4326 and dst.nodata == NODATA
        m = dst.read(1)
        nodata_in = (src.read([2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 1]) == src.nodata).all(axis=0)  # 12 model bands
    assert r.tiles_total == 11 * 11
    assert set(np.unique(m[~nodata_in])) <= {0, 1}
    assert (m[nodata_in] == NODATA).all()


def test_oscd_bercy_change_map_on_the_10m_grid(tmp_path):
    city = REAL / "oscd" / "bercy"
    p = Predictor.load(save_tiny(tmp_path / "cd", "cd_vit_tiny_patch8_64", "change", ["no change", "change"]))
    out = tmp_path / "bercy_cm.tif"
    predict_scene(p, city / "imgs_1", out, input2=city / "imgs_2", overlap=0.25, batch_size=16, progress=False)
    b02 = next((city / "imgs_1").glob("*_B02.tif"))
    with rasterio.open(b02) as ref, rasterio.open(out) as dst:
        assert (dst.crs, dst.shape) == (ref.crs, ref.shape) == (ref.crs, (395, 360))
        assert dst.transform.almost_equals(ref.transform)
        m = dst.read(1)
        assert dst.descriptions == ("change",)
    assert set(np.unique(m)) <= {0, 1}  # L1C tiles: no nodata in the city crop
