"""Reading whole scenes window by window: a multi-band GeoTIFF, a folder of single-band files, or a tar of them.

A `Scene` keeps its datasets open for the whole run and reads any window of its reference grid (the 10 m grid)
with the requested bands selected *by name*, in the requested order:

* a multi-band GeoTIFF: band names from the band descriptions (or `band_order`), windowed reads;
* a folder (searched recursively, e.g. a Sentinel-2 SAFE product) of single-band files whose names end with
  ``_B02.tif`` / ``_B8A.jp2`` (optionally ``_B02_10m.jp2``): every band is read onto the grid of the first 10 m band
  present (B2, B4, B3, B8) window by window -- the window's bounds become a (fractional) window of the coarse
  file, resampled by GDAL in the same read (bilinear), so a 20 m or 60 m band never needs to be held whole;
  an HLS v2 granule's files (``HLS.S30.<tile>.<date>.v2.0.B8A.tif``, ``HLS.L30....B05.tif``) are named by the
  product's band numbers: the bands HLS shares between L30 and S30 become ``HLS:BLUE`` ... ``HLS:SWIR_2``
  (S30 B8A and L30 B05 are both ``HLS:NIR_NARROW``), S30's other MSI bands their Sentinel-2 names (B5 ... B9)
  and L30's thermal bands ``OLI:B10`` / ``OLI:B11``; the granule's other files (Fmask, angles) are not bands;
* a ``.tar`` of either, read in place through GDAL's ``/vsitar/``.

Pixels where every band equals the nodata value (the file's declared nodata, else 0) are *nodata* (`nodata_mask`).

Only local paths are opened (no URLs, no GDAL network paths), band files with the GeoTIFF or JPEG 2000 driver
chosen from their signature, and a scene's declared size is capped (`SPECTRALGPT_MAX_SCENE_BYTES`, default 64 GiB:
reads are windowed, so the cap is far above what whole-file readers allow); see `spectralgpt.io.raster`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np
from rasterio.enums import Resampling
from rasterio.transform import Affine, array_bounds
from rasterio.windows import Window
from rasterio.windows import from_bounds as window_from_bounds

from spectralgpt.bands import band_info, canonical, canonical_list
from spectralgpt.data.sample import BadSample
from spectralgpt.io import raster, s2offset

log = logging.getLogger(__name__)

__all__ = ["Scene", "SceneError", "find_band_files", "open_scene"]

#: ``..._B02.tif``, ``..._B8A.jp2``, ``..._B02_10m.jp2`` (L2A SAFE) -> band, resolution tag
BAND_FILE = re.compile(r"_(B\d{1,2}A?)(?:_(\d+)m)?\.(?:tiff?|jp2)$", re.IGNORECASE)
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")
#: ``HLS.S30.T10SEH.2021200T184919.v2.0.B8A.tif`` -> product (S30, L30), band number
HLS_BAND_FILE = re.compile(r"^HLS\.([SL]30)\..+\.(B\d{2}|B8A)\.tiff?$", re.IGNORECASE)
#: an HLS granule's band number -> our band, per product
HLS_PRODUCT_BANDS = {
    "S30": {"B01": "HLS:COASTAL_AEROSOL", "B02": "HLS:BLUE", "B03": "HLS:GREEN", "B04": "HLS:RED", "B05": "B5",
            "B06": "B6", "B07": "B7", "B08": "B8", "B8A": "HLS:NIR_NARROW", "B09": "B9", "B10": "HLS:CIRRUS",
            "B11": "HLS:SWIR_1", "B12": "HLS:SWIR_2"},
    "L30": {"B01": "HLS:COASTAL_AEROSOL", "B02": "HLS:BLUE", "B03": "HLS:GREEN", "B04": "HLS:RED",
            "B05": "HLS:NIR_NARROW", "B06": "HLS:SWIR_1", "B07": "HLS:SWIR_2", "B09": "HLS:CIRRUS", "B10": "OLI:B10",
            "B11": "OLI:B11"},
}


class SceneError(ValueError):
    """A scene that cannot be predicted: missing bands, two dates on different grids, an unusable input."""


def find_band_files(names, where: str) -> dict[str, str]:
    """{band: name} from file names ending in ``_Bxx[_NNm].tif|jp2``; of several files of one band (SAFE L2A keeps
    B02 at 10, 20 and 60 m) the finest resolution tag wins; two files of one band otherwise are an error."""
    found: dict[str, tuple[int, str]] = {}
    for name in sorted(names):
        hls = HLS_BAND_FILE.match(os.path.basename(name))
        m = None if hls else BAND_FILE.search(os.path.basename(name))
        if hls:
            band = HLS_PRODUCT_BANDS[hls.group(1).upper()].get(hls.group(2).upper())
            if band is None:
                continue
        elif not m:
            continue
        else:
            try:
                band = canonical(m.group(1))
            except ValueError:
                continue
        res = int(m.group(2)) if m and m.group(2) else 0
        if band in found:
            if found[band][0] == res:
                raise SceneError(f"two files for band {band} in {where}: {found[band][1]} and {name}")
            if res > found[band][0]:
                continue
        found[band] = (res, name)
    return {b: n for b, (_, n) in found.items()}


@dataclass
class Scene:
    """An opened scene: band names available, reference grid, nodata value; `read(window, bands)`."""

    path: str
    kind: str  # 'multiband' or 'bandfiles'
    bands: tuple[str, ...]
    grid: raster.Grid
    nodata: float
    _datasets: dict = field(default_factory=dict, repr=False)  # multiband: {'': src}; bandfiles: {band: src}
    _names: tuple[str, ...] = ()  # multiband: band name per file band
    #: Sentinel-2 baseline 04.00 harmonisation (spectralgpt.io.s2offset.resolve): offsets subtracted on read
    harmonization: dict = field(default_factory=lambda: {"offsets": {}, "source": "none"})

    @property
    def height(self) -> int:
        return self.grid.height

    @property
    def width(self) -> int:
        return self.grid.width

    @property
    def crs(self):
        return self.grid.crs

    @property
    def transform(self) -> Affine:
        return self.grid.transform

    def require(self, bands) -> tuple[str, ...]:
        """Check that every band in `bands` is available; raise naming the missing ones."""
        want = canonical_list(bands)
        missing = [b for b in want if b not in self.bands]
        if missing:
            raise SceneError(f"{self.path} lacks band(s) {', '.join(missing)} that the model needs; "
                             f"it has {', '.join(self.bands) or 'none'}")
        return want

    def read(self, window: Window, bands) -> np.ndarray:
        """(C, h, w) pixels of `window` (on the reference grid, inside the scene) in the order of `bands`."""
        want = self.require(bands)
        if self.kind == "multiband":
            src = self._datasets[""]
            out = raster._read(src, self.path, indexes=[self._names.index(b) + 1 for b in want], window=window)
            return s2offset.harmonize(out, want, self.harmonization["offsets"])
        out = None
        for i, b in enumerate(want):
            a = self._read_band(b, window)
            if out is None:
                out = np.empty((len(want), *a.shape), dtype=a.dtype)
            out[i] = a
        return s2offset.harmonize(out, want, self.harmonization["offsets"])

    def _read_band(self, band: str, window: Window) -> np.ndarray:
        src = self._datasets[band]
        h, w = int(window.height), int(window.width)
        if src.transform == self.transform and (src.height, src.width) == self.grid.shape:
            return raster._read(src, src.name, 1, window=window)
        transform = raster.window_transform(self.transform, window)
        win = window_from_bounds(*array_bounds(h, w, transform), transform=src.transform)
        vals = (win.col_off, win.row_off, win.width, win.height)
        if all(raster._near_int(v) for v in vals):
            win = Window(*(int(round(v)) for v in vals))
        inside = (win.col_off > -1e-6 and win.row_off > -1e-6 and win.col_off + win.width < src.width + 1e-6
                  and win.row_off + win.height < src.height + 1e-6)
        kw = {} if inside else {"boundless": True, "fill_value": 0}
        return raster._read(src, src.name, 1, window=win, out_shape=(h, w), resampling=Resampling.bilinear, **kw)

    def nodata_mask(self, pixels: np.ndarray) -> np.ndarray:
        """(h, w) bool: every band equals the nodata value."""
        return np.all(pixels == self.nodata, axis=0)


def _multiband(path: str, stack: contextlib.ExitStack, band_order) -> Scene:
    src = stack.enter_context(raster.open_raster(path, max_bytes=raster.max_raster_bytes(scene=True)))
    try:
        names = raster.band_names(src, band_order)
    except BadSample as e:
        raise SceneError(f"{e}; pass band_order=[...] (one name per band) for files without band descriptions") from e
    crs, transform = raster._georef(src)
    nodata = src.nodata if src.nodata is not None else 0
    return Scene(path, "multiband", names, raster.Grid(crs, transform, src.height, src.width), nodata,
                 {"": src}, names)


def _bandfiles(path: str, files: dict[str, str], stack: contextlib.ExitStack) -> Scene:
    cap = raster.max_raster_bytes(scene=True)
    datasets = {b: stack.enter_context(raster.open_raster(p, allow_drivers=raster.BAND_FILE_DRIVERS, max_bytes=cap))
                for b, p in files.items()}
    ref = next((b for b in raster.TEN_M_BANDS if b in datasets), None)
    if ref is None:
        ref = min(datasets, key=lambda b: abs(datasets[b].transform.a))
    r = datasets[ref]
    crs, transform = raster._georef(r)
    for b, src in datasets.items():
        if (src.crs or None) != crs:
            raise SceneError(f"band files of {path} are in different CRSs: {ref} is in {crs}, {b} in {src.crs}")
    nodata = next((src.nodata for src in datasets.values() if src.nodata is not None), 0)
    bands = tuple(sorted(datasets, key=lambda b: (band_info(b).wavelength_nm, b)))  # Sentinel-2: the ESA order
    return Scene(path, "bandfiles", bands, raster.Grid(crs, transform, r.height, r.width), nodata, datasets)


@contextlib.contextmanager
def open_scene(path: str | os.PathLike, band_order=None, offset="auto"):
    """Open a scene (multi-band GeoTIFF, folder of band files, or a .tar of either) for windowed reads.

    offset: Sentinel-2 baseline 04.00 DN offset to subtract ("auto": from the SAFE product's MTD_MSIL*.xml when
    the scene lies in one; an integer for bare GeoTIFFs; see `spectralgpt.io.s2offset`)."""
    offset = s2offset.check_option(offset)
    path = raster.check_local_path(path)
    with contextlib.ExitStack() as stack:
        if not os.path.exists(path):
            raise FileNotFoundError(f"input scene {path} does not exist")
        if os.path.isdir(path):
            names = [os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs
                     if f.lower().endswith(RASTER_SUFFIXES)]
            files = find_band_files(names, path)
            if not files:
                raise SceneError(f"no band files (names ending in _B02.tif, _B8A.jp2, ...) in folder {path}")
            scene = _bandfiles(path, {b: os.path.join(path, n) for b, n in files.items()}, stack)
        elif path.lower().endswith((".tar", ".tar.gz", ".tgz")):
            members = raster.list_tar_members(path, RASTER_SUFFIXES)
            files = find_band_files(members, path)
            if files:
                scene = _bandfiles(path, {b: raster.vsitar(path, n) for b, n in files.items()}, stack)
            elif len(members) == 1:
                scene = _multiband(raster.vsitar(path, members[0]), stack, band_order)
            else:
                raise SceneError(f"tar {path} holds neither band files (_B02.tif, ...) nor exactly one multi-band "
                                 f"GeoTIFF (found {len(members)} raster members)")
        else:
            scene = _multiband(path, stack, band_order)
        scene.harmonization = s2offset.resolve(path, scene.bands, offset)
        if scene.harmonization["offsets"]:
            log.info("%s: subtracting the Sentinel-2 DN offset %s (%s)", path, s2offset.summary(scene.harmonization),
                     scene.harmonization["metadata"] or "--offset")
        log.debug("opened %s: %s, %d x %d, bands %s", path, scene.kind, scene.height, scene.width, scene.bands)
        yield scene


def check_same_grid(a: Scene, b: Scene) -> None:
    """Two dates must share CRS and size (the second date is read on the first one's pixel grid)."""
    if (a.crs or None) != (b.crs or None):
        raise SceneError(f"the two dates are in different CRSs: {a.path} is in {a.crs}, {b.path} in {b.crs}; "
                         "reproject one onto the other's grid first")
    if a.grid.shape != b.grid.shape:
        raise SceneError(f"the two dates differ in size: {a.path} is {a.height} x {a.width}, "
                         f"{b.path} is {b.height} x {b.width}; put them on one grid first")
    ta, tb = a.transform, b.transform
    if abs(ta.c - tb.c) > abs(ta.a) / 2 or abs(ta.f - tb.f) > abs(ta.e) / 2:
        log.warning("the two dates have the same size but origins more than half a pixel apart (%s vs %s); "
                    "predicting them pixel by pixel", (ta.c, ta.f), (tb.c, tb.f))
