"""Input bands in the parameters: a task's `bands` (with `sensor`, `fill`, `wavelength_tolerance_nm`) and a source's
stored `bands` are canonical names, checked against the model's bands before any work; the HLS Burn Scars profile
validates."""

from pathlib import Path

import pytest

from spectralgpt.bands import HLS_BANDS
from spectralgpt.config import ConfigError, SourceConfig, load_params, validate

REPO = Path(__file__).resolve().parents[2]
HLS = ["Blue", "Green", "Red", "NIR Narrow", "SWIR 1", "SWIR 2"]


def test_task_bands_are_canonical_and_mappable():
    params = load_params(REPO / "params.yaml", {"finetune.segmentation.bands": HLS,
                                                  "finetune.segmentation.sensor": "HLS",
                                                  "finetune.segmentation.fill": "mean"})
    ft = params.finetune["segmentation"]
    assert ft.bands == list(HLS_BANDS) and ft.sensor == "hls" and ft.fill == "mean"
    assert params.finetune["classification"].bands is None  # unchanged default: the corpus' own bands


@pytest.mark.parametrize("override, message", [
    ({"finetune.segmentation.bands": ["OLI:B10", "OLI:B11"]}, "none of the input bands OLI:B10, OLI:B11"),
    ({"finetune.segmentation.bands": HLS}, "unknown Sentinel-2 band name 'Blue'"),  # no sensor given
    ({"finetune.segmentation.bands": ["Blue"], "finetune.segmentation.sensor": "modis"}, "unknown sensor 'modis'"),
    ({"finetune.segmentation.bands": []}, "bands is empty"),
    ({"finetune.segmentation.fill": "median"}, "finetune.segmentation.fill = 'median'"),
    ({"finetune.segmentation.bands": ["HLS:BLUE"], "finetune.segmentation.wavelength_tolerance_nm": 5},
     "none of the input bands HLS:BLUE"),  # 482 nm is 10 nm from B2
    ({"finetune.segmentation.wavelength_tolerance_nm": 500}, "less than or equal to 100"),
    ({"data.sources.segmentation.bands": ["B2", "B2"]}, "more than once"),
])
def test_bad_band_settings_fail_before_work(override, message):
    with pytest.raises(ConfigError) as info:
        load_params(REPO / "params.yaml", override)
    assert message in str(info.value), str(info.value)


def test_source_bands_and_kind():
    src = validate(SourceConfig, {"kind": "hls_burn_scars", "root": "x", "bands": ["swir2", "red"], "sensor": "hls"})
    assert src.bands == ["HLS:SWIR_2", "HLS:RED"] and src.sensor == "hls"
    assert validate(SourceConfig, {"kind": "eurosat", "root": "x"}).bands is None


def test_hls_burn_scars_profile():
    params = load_params(REPO / "params" / "hls-burn-scars.yaml")
    ft = params.finetune["segmentation"]
    assert params.data.sources["segmentation"].kind == "hls_burn_scars"
    assert ft.bands == list(HLS_BANDS) and ft.fill == "nearest" and ft.ignore_index == -1 and ft.val_split == "train"
