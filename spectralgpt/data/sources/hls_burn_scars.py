"""HLS Burn Scars (Phillips et al. 2023), burn-scar segmentation on Harmonized Landsat and Sentinel-2 chips, as
downloaded from Hugging Face ``ibm-nasa-geospatial/hls_burn_scars`` and extracted (``hls_burn_scars.tar.gz``).

Layout (any depth above the two split folders)::

    <root>/**/training/subsetted_512x512_HLS.S30.T10SEH.2018190.v1.4_merged.tif    6 bands, 512 x 512
    <root>/**/training/subsetted_512x512_HLS.S30.T10SEH.2018190.v1.4.mask.tif      1 band, same grid
    <root>/**/validation/...                                                       the same pairs

A scene file is ``<id>_merged.tif``; its mask ``<id>.mask.tif`` in the same folder (the published name;
``<id>_mask.tif`` is accepted too). Scene files outside a ``training/`` or ``validation/`` folder are not listed.

Band order (the dataset card; the files carry no band names, so the order is taken as documented even when a
file's descriptions say otherwise): **HLS:BLUE, HLS:GREEN, HLS:RED, HLS:NIR_NARROW, HLS:SWIR_1, HLS:SWIR_2**
(S30 B02, B03, B04, B8A, B11, B12; L30 B02-B07). `spectralgpt.bands.BandMapping` maps them onto the model's
Sentinel-2 bands by wavelength (NIR_NARROW is B8A, SWIR_1 is B11, ...).

Pixels. What we assume: the card says the bands are "converted to reflectance"; the published chips are
floating-point reflectance (0-1, about 8 bytes per pixel and band: float64) with nodata -9999, the convention of
the Prithvi burn-scar configuration (band means 0.03-0.23, ``image_nodata = -9999``). Option ``scale``:
``"auto"`` (default) multiplies floating-point files by 10000 and takes integer files (HLS products' int16) as
reflectance x 10000 already; a number multiplies every file by it. The result is **uint16 reflectance x 10000**,
the Sentinel-2 DN scale of the rest of the corpus: negative reflectance is clipped to 0; nodata pixels (the
file's nodata value, -9999, or not finite) are 0. A model fine-tuned on this corpus records that conversion
(`RAW_INPUT`, ``normalization.input`` of its config.json), and `Predictor` applies it to raw inputs first, so the
chips as downloaded (float 0-1) and HLS products (int16 x 10000) predict as the stored corpus trained.

Label: the mask as an (H, W) **int64** array: 1 = burn scar, 0 = not burned, **-1 = missing data** (kept as is:
use ``ignore_index: -1``, as ``params/hls-burn-scars.yaml`` does). Other values are an `unknown_label`; a mask of
another size is `wrong_size`; a scene without its mask is `missing_file`.

Splits: ``training/`` is ``train``; ``validation/`` is ``test``: the paper (and PANGAEA and TerraTorch) report on
the validation folder, the only held-out data the dataset has. There is no ``val`` split: fine-tuning validates
on a hold-out of the training chips (``val_split: train``, the segmentation task's default). Sample id: the
scene file name without ``_merged.tif`` (``subsetted_512x512_HLS.S30.T10SEH.2018190.v1.4``).
"""

from __future__ import annotations

import math
import os

import numpy as np

from spectralgpt.bands import HLS_BANDS
from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.data.sources.base import Entry, SourceDataset
from spectralgpt.io import raster

#: band order of the scene files (canonical ids)
HLS_BURN_SCARS_BANDS: tuple[str, ...] = HLS_BANDS
IGNORE_INDEX = -1
NODATA = -9999
#: split folder -> our split
SPLIT_FOLDERS = {"training": "train", "validation": "test"}
SCENE_SUFFIX = "_merged.tif"
MASK_SUFFIXES = (".mask.tif", "_mask.tif")
REFLECTANCE_SCALE = 10000  # float reflectance (0-1) -> the stored DN scale
#: the conversion of raw pixels a model trained on this corpus records (`apply_raw_input`)
RAW_INPUT = {"conversion": "reflectance_dn", "scale": "auto", "nodata": NODATA}


def check_scale(value):
    """"auto" or a positive finite number; ValueError naming the value otherwise."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"hls_burn_scars: scale={value!r}: allowed are 'auto' or a positive number (10000 turns "
                         "0-1 reflectance into reflectance x 10000)")
    return float(value)


def to_reflectance_dn(pixels: np.ndarray, scale="auto", nodata: float | None = None) -> np.ndarray:
    """(C, H, W) scene pixels -> uint16 reflectance x 10000 (0 = nodata), see the module docstring."""
    x = np.asarray(pixels)
    factor = (REFLECTANCE_SCALE if x.dtype.kind == "f" else 1.0) if scale == "auto" else float(scale)
    x = x.astype(np.float64)
    bad = ~np.isfinite(x) | (x == NODATA)
    if nodata is not None and np.isfinite(nodata):
        bad |= x == nodata
    y = np.clip(np.rint(np.where(bad, 0.0, x) * factor), 0, np.iinfo(np.uint16).max)
    return y.astype(np.uint16)


def apply_raw_input(pixels: np.ndarray, spec: dict) -> np.ndarray:
    """Raw pixels through a recorded conversion (`RAW_INPUT`); a malformed record is refused."""
    if not isinstance(spec, dict) or spec.get("conversion") != "reflectance_dn":
        raise ValueError(f"unknown raw input conversion {spec!r}; known: {RAW_INPUT}")
    nodata = spec.get("nodata")
    if nodata is not None and (isinstance(nodata, bool) or not isinstance(nodata, (int, float))):
        raise ValueError(f"raw input conversion: nodata {nodata!r} is not a number")
    return to_reflectance_dn(pixels, check_scale(spec.get("scale", "auto")), nodata)


def _split_of(dirpath: str, root: str) -> str | None:
    """The split of a folder: its nearest ancestor (itself included) named training/ or validation/."""
    rel = os.path.relpath(dirpath, root)
    parts = [] if rel == "." else rel.split(os.sep)
    for part in reversed([os.path.basename(root), *parts]):
        if part.lower() in SPLIT_FOLDERS:
            return SPLIT_FOLDERS[part.lower()]
    return None


class HLSBurnScars(SourceDataset):
    kind = "hls_burn_scars"
    LAYOUT = ("<root>/**/{training,validation}/<id>_merged.tif (6 bands) + <id>.mask.tif (1 = burned, 0 = not, "
              "-1 = no data)")
    CLASS_NAMES = ("not burned", "burn scar")  # -1 = missing data (ignored)
    DEFAULT_BANDS = HLS_BURN_SCARS_BANDS
    OPTIONS = {"scale": "auto"}
    RAW_INPUT = RAW_INPUT

    def __init__(self, root, split=None, bands=HLS_BURN_SCARS_BANDS, **options):
        super().__init__(root, split=split, bands=bands, **options)
        self.options["scale"] = check_scale(self.options["scale"])

    def _index(self) -> list[Entry]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            split = _split_of(dirpath, self.root)
            if split is None or not self._keep(split):
                continue
            for f in sorted(filenames):
                if f.endswith(SCENE_SUFFIX):
                    out.append(Entry(f[: -len(SCENE_SUFFIX)], os.path.join(dirpath, f), split))
        return out

    @staticmethod
    def _mask_path(e: Entry) -> str | None:
        folder = os.path.dirname(e.path)
        return next((p for s in MASK_SUFFIXES if os.path.exists(p := os.path.join(folder, e.id + s))), None)

    def _read(self, e: Entry) -> Sample:
        r = raster.read_multiband(e.path, self.bands, band_order=HLS_BURN_SCARS_BANDS, use_descriptions=False)
        mask_path = self._mask_path(e)
        if mask_path is None:
            raise BadSample(Reason.MISSING_FILE, f"no {e.id}.mask.tif beside {e.path}", e.path)
        values = self._label_mask(mask_path, r.array.shape[-2:])
        label = values.astype(np.int64)
        bad = np.setdiff1d(np.unique(label), [IGNORE_INDEX, 0, 1])
        if bad.size:
            raise BadSample(Reason.UNKNOWN_LABEL, f"mask values {bad[:10].tolist()} not in {{-1, 0, 1}}", mask_path)
        r.array = to_reflectance_dn(r.array, self.options["scale"], r.nodata)
        return self._sample(e, r, label=label, nodata=0, label_path=mask_path, ignore_index=IGNORE_INDEX,
                            scale=self.options["scale"])
