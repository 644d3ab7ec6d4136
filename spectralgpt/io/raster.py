"""Raster I/O on rasterio: multi-band GeoTIFFs, per-band files resampled onto the 10 m grid, windows, tars.

Every function here returns pixels in the file's native dtype together with the georeference (CRS and affine
transform) of the grid they lie on, and turns every GDAL failure into a `BadSample` whose reason code says what
went wrong (`not_geotiff`, `truncated`, `missing_file`, `missing_bands`, `unreadable`) and whose message names the
file.

Band names
    A multi-band file's band names come from its band descriptions when every band has a valid Sentinel-2 name
    there (Sen1Floods11, files we write), else from an order the caller documents (EuroSAT's B8A-last order).
    Bands are then selected *by name* into the order the caller asks for.

Resampling per-band files onto the 10 m grid
    Sentinel-2 products store 10 m (B2, B3, B4, B8), 20 m (B5, B6, B7, B8A, B11, B12) and 60 m (B1, B9, B10)
    bands on different grids. `read_band_files` takes the grid of one 10 m band (B2 by default, else B4, B3, B8)
    and reads every other band *onto that grid*: the target grid's bounds become a (fractional) window of the
    coarse file, which rasterio reads with `out_shape=` the target shape, so the resampling is done by GDAL in one
    read. When the coarse file covers exactly the same extent (BigEarthNet, OSCD) this is the plain whole-file
    `out_shape` read. The default kernel is **bilinear**: it never overshoots (a resampled value always lies
    between its neighbours, so uint16 reflectances cannot wrap or ring around sharp edges such as coastlines and
    cloud borders, and nodata-adjacent zeros do not produce negative lobes), it is cheap, and upsampling by 2x/6x
    cannot add information that a sharper kernel would recover anyway. `resampling="cubic"` is available (the
    original OSCD code used a cubic spline) for users who want to reproduce it.

Windows
    `window=` (a `rasterio.windows.Window` on the reference grid) reads part of a big scene; the returned
    transform is the window's own transform. `iter_windows` tiles a scene.

Tar archives
    GeoTIFFs inside a tar are read in place through GDAL's `/vsitar/` virtual file system (`vsitar(tar, member)`),
    never extracted. `list_tar_members` lists the GeoTIFF members without reading their pixels.

Hostile files
    Files downloaded from the internet are opened defensively:

    * only local files (and members of local tars through `/vsitar/`) are opened: URLs (``http://``, ``s3://``,
      ``file://``, ...) and every other GDAL virtual file system (``/vsicurl/``, ``/vsis3/``, ...) are refused
      before anything is opened, so a path in a list file or a request cannot make the process fetch a URL;
    * the driver is chosen from the file's first bytes among an explicit allow-list (GeoTIFF by default,
      JPEG 2000 for Sentinel-2 band files, PNG for masks) and passed to `rasterio.open(driver=...)`, so GDAL never
      probes other formats: a ``.jp2`` that is really VRT XML (which could read the pixels of any other file) is
      refused, not parsed;
    * width x height x bands x bytes per pixel is checked against a cap before any pixel is read (default 4 GiB,
      `SPECTRALGPT_MAX_RASTER_BYTES`; windowed scene readers use `SPECTRALGPT_MAX_SCENE_BYTES`, default 64 GiB),
      so a small sparse GeoTIFF that declares 12 x 200000 x 200000 pixels is refused, not read;
    * error messages name the file and the problem, never quote its contents.
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine, array_bounds
from rasterio.windows import Window
from rasterio.windows import from_bounds as _window_from_bounds

from spectralgpt.bands import ALL_BANDS, canonical, canonical_list
from spectralgpt.data.sample import BadSample, Reason

log = logging.getLogger(__name__)

__all__ = [
    "BAND_FILE_DRIVERS",
    "Grid",
    "Raster",
    "TEN_M_BANDS",
    "band_names",
    "fill_missing_bands",
    "grid_of",
    "iter_windows",
    "check_local_path",
    "list_tar_members",
    "max_raster_bytes",
    "open_raster",
    "read_band_files",
    "read_mask",
    "read_multiband",
    "read_onto_grid",
    "vsitar",
    "window_transform",
]

#: 10 m bands, in the order they are preferred as the reference grid.
TEN_M_BANDS: tuple[str, ...] = ("B2", "B4", "B3", "B8")

#: drivers for single-band Sentinel-2 files (GeoTIFF exports, JPEG 2000 in SAFE products)
BAND_FILE_DRIVERS: tuple[str, ...] = ("GTiff", "JP2OpenJPEG")
MAX_RASTER_BYTES_ENV = "SPECTRALGPT_MAX_RASTER_BYTES"
MAX_SCENE_BYTES_ENV = "SPECTRALGPT_MAX_SCENE_BYTES"
DEFAULT_MAX_RASTER_BYTES = 4 << 30  # whole-file reads: 4 GiB
DEFAULT_MAX_SCENE_BYTES = 64 << 30  # windowed scene reads (memory bounded): 64 GiB declared

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
#: first bytes of each format we may open -> its GDAL driver (JP2 box signature or a raw J2K codestream)
_MAGIC_DRIVERS = (
    (_TIFF_MAGIC, "GTiff"),
    ((b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51"), "JP2OpenJPEG"),
    ((b"\x89PNG\r\n\x1a\n",), "PNG"),
)
_GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # do not list sibling files on every open
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".none",  # belt and braces: no /vsicurl/ fetch even if a path slipped by
    "GDAL_HTTP_MAX_RETRY": "0",
}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_VSITAR = re.compile(r"^/vsitar/(.+?\.(?:tar|tar\.gz|tgz))/(.+)$", re.IGNORECASE)
_RESAMPLING = {
    "nearest": Resampling.nearest,
    "bilinear": Resampling.bilinear,
    "cubic": Resampling.cubic,
    "cubic_spline": Resampling.cubic_spline,
    "average": Resampling.average,
}


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS (None when the file is not georeferenced), affine transform and shape."""

    crs: object
    transform: Affine
    height: int
    width: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return array_bounds(self.height, self.width, self.transform)  # (west, south, east, north)


@dataclass
class Raster:
    """Pixels (C, H, W) in native dtype with their band names and georeference."""

    array: np.ndarray
    bands: tuple[str, ...]
    crs: object
    transform: Affine
    nodata: float | None = None
    path: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        return Grid(self.crs, self.transform, self.array.shape[-2], self.array.shape[-1])


# ----------------------------------------------------------------------------------------------- paths


def vsitar(tar_path: str | os.PathLike, member: str) -> str:
    """GDAL path of `member` inside the tar archive `tar_path` (read in place, no extraction)."""
    return f"/vsitar/{os.path.abspath(os.fspath(tar_path))}/{member.lstrip('/')}"


def list_tar_members(tar_path: str | os.PathLike, suffixes=(".tif", ".tiff")) -> list[str]:
    """Sorted names of the regular-file members of a tar whose name ends with one of `suffixes`.

    Reads only the tar headers. Raises `BadSample('unreadable')` naming the archive when it is not a readable tar.
    """
    tar_path = os.fspath(tar_path)
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            names = [m.name for m in tf.getmembers() if m.isfile() and m.name.lower().endswith(tuple(suffixes))]
    except FileNotFoundError as e:
        raise BadSample(Reason.MISSING_FILE, f"tar archive {tar_path} does not exist", tar_path) from e
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BadSample(Reason.UNREADABLE, f"{tar_path} is not a readable tar archive: {e}", tar_path) from e
    return sorted(names)


def check_local_path(path: str | os.PathLike) -> str:
    """`path` as a string when it names a local file or a member of a local tar (``/vsitar/<local tar>/...``).

    URLs (any ``scheme://``, which rasterio would hand to GDAL's network file systems) and every other GDAL
    virtual file system (``/vsicurl/``, ``/vsis3/``, ``/vsizip/``, ...) raise `BadSample('unreadable')` before
    anything is opened: a path taken from a list file or a request must never make this process fetch a URL.
    """
    path = os.fspath(path)
    if _URL.match(path):
        raise BadSample(Reason.UNREADABLE, f"{path} is a URL; only local files are read (download it first)", path)
    if path.startswith("/vsi"):
        m = _VSITAR.match(path)
        inner = m.group(1) if m else ""
        if not m or inner.startswith("/vsi") or _URL.match(inner.lstrip("/")) or "://" in inner:
            raise BadSample(Reason.UNREADABLE, f"{path} is a GDAL virtual path; only local files and members of "
                            "local tar archives (/vsitar/) are read", path)
    return path


def _env_bytes(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of bytes") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be a positive number of bytes")
    return value


def max_raster_bytes(scene: bool = False) -> int:
    """The decoded-size cap for one raster: whole-file reads (`SPECTRALGPT_MAX_RASTER_BYTES`, default 4 GiB) or
    windowed scene reads (`SPECTRALGPT_MAX_SCENE_BYTES`, default 64 GiB)."""
    if scene:
        return _env_bytes(MAX_SCENE_BYTES_ENV, DEFAULT_MAX_SCENE_BYTES)
    return _env_bytes(MAX_RASTER_BYTES_ENV, DEFAULT_MAX_RASTER_BYTES)


def _check_size(src, path: str, max_bytes: int) -> None:
    """Refuse a raster whose declared pixels (width x height x bands x bytes per value) exceed `max_bytes`."""
    itemsize = max(np.dtype(d).itemsize for d in src.dtypes) if src.count else 1
    size = int(src.width) * int(src.height) * int(src.count) * itemsize
    if size > max_bytes:
        raise BadSample(
            Reason.WRONG_SIZE,
            f"{path} declares {src.count} band(s) x {src.height} x {src.width} pixels of {itemsize} byte(s) "
            f"({size / 2**30:.1f} GiB), over the {max_bytes / 2**30:.1f} GiB limit; refused before reading "
            f"(raise {MAX_RASTER_BYTES_ENV} / {MAX_SCENE_BYTES_ENV} if it is genuine)",
            path,
        )


def _driver_of(head: bytes) -> str | None:
    return next((drv for magics, drv in _MAGIC_DRIVERS if head.startswith(magics)), None)


def _head(path: str, n: int = 12) -> bytes | None:
    """First `n` bytes of a local file or a /vsitar/ member; None when they cannot be read."""
    m = _VSITAR.match(path)
    try:
        if m:
            with tarfile.open(m.group(1), "r:*") as tf:
                f = tf.extractfile(m.group(2))
                return None if f is None else f.read(n)
        if path.startswith("/vsi"):
            return None
        with open(path, "rb") as f:
            return f.read(n)
    except (OSError, KeyError, tarfile.TarError, EOFError):
        return None


def _exists(path: str) -> bool | None:
    m = _VSITAR.match(path)
    if m:
        if not os.path.exists(m.group(1)):
            return False
        try:
            with tarfile.open(m.group(1), "r:*") as tf:
                tf.getmember(m.group(2))
            return True
        except KeyError:
            return False
        except (tarfile.TarError, OSError, EOFError):
            return None
    if path.startswith("/vsi"):
        return None
    return os.path.exists(path)


def _signature_problem(path: str, head: bytes | None, allow_drivers: tuple[str, ...]) -> BadSample | None:
    """Why a file's first bytes rule it out for `allow_drivers` (None when they match one of them)."""
    if head is None:
        return BadSample(Reason.UNREADABLE, f"cannot read {path} (permissions, a broken archive or a folder)", path)
    if len(head) == 0:
        return BadSample(Reason.TRUNCATED, f"{path} is empty (0 bytes): truncated download or copy", path)
    driver = _driver_of(head)
    if driver is None:
        return BadSample(Reason.NOT_GEOTIFF, f"{path} is not a GeoTIFF: its first bytes are not a signature of "
                         f"{' or '.join(allow_drivers)}", path)
    if driver not in allow_drivers:
        return BadSample(Reason.NOT_GEOTIFF, f"{path} is a {driver} raster, expected {' or '.join(allow_drivers)}",
                         path)
    return None


def _open_error(path: str, exc: Exception, allow_drivers: tuple[str, ...]) -> BadSample:
    """Turn a failure to open `path` into a BadSample with the right reason."""
    if _exists(path) is False:
        return BadSample(Reason.MISSING_FILE, f"file {path} does not exist", path)
    head = _head(path)
    problem = _signature_problem(path, head, allow_drivers)
    if problem is not None:
        return problem
    return BadSample(Reason.TRUNCATED, f"{path} has a {_driver_of(head)} header but is truncated or corrupt: {exc}",
                     path)


def _pick_driver(path: str, allow_drivers: tuple[str, ...]) -> str | None:
    """The one allowed driver that matches a local file's first bytes; refuse the file when none does.

    GDAL is then told to use that driver only, so no other format's parser (VRT, which can read other files;
    network-backed formats) ever sees the bytes. For a member of a tar the answer is None: reading its first bytes
    from Python would rescan the archive on every open (GDAL's /vsitar/ keeps an index), so each allowed driver is
    tried alone in turn instead, which keeps every other parser away just the same.
    """
    if _VSITAR.match(path):
        return None
    if _exists(path) is False:
        raise BadSample(Reason.MISSING_FILE, f"file {path} does not exist", path)
    head = _head(path)
    problem = _signature_problem(path, head, allow_drivers)
    if problem is not None:
        raise problem
    return _driver_of(head)


def _open_with(path: str, drivers: tuple[str, ...]):
    """rasterio.open with each driver alone in turn (GDAL probes no other format); the last failure is raised."""
    error: Exception | None = None
    for driver in drivers:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                return rasterio.open(path, driver=driver)
        except (RasterioError, OSError) as e:
            error = e
    raise error


@contextmanager
def open_raster(path: str | os.PathLike, allow_drivers: tuple[str, ...] = ("GTiff",),
                max_bytes: int | None = None):
    """Open a local raster for reading; every failure becomes a `BadSample` naming the file and the problem.

    allow_drivers: the GDAL drivers accepted (GeoTIFF only by default); the one matching the file's signature is
        the only driver GDAL may use (tar members: each allowed driver alone, in turn). URLs and GDAL virtual paths other than /vsitar/ are refused (see
        `check_local_path`).
    max_bytes: cap on the declared decoded size (default `max_raster_bytes()`), checked before any pixel is read.
    """
    path = check_local_path(path)
    allow_drivers = tuple(allow_drivers or ())
    if not allow_drivers:
        raise ValueError("allow_drivers must name at least one GDAL driver")
    driver = _pick_driver(path, allow_drivers)
    cap = max_raster_bytes() if max_bytes is None else max_bytes
    with rasterio.Env(**_GDAL_ENV):
        try:
            src = _open_with(path, (driver,) if driver else allow_drivers)
        except (RasterioError, OSError) as e:
            raise _open_error(path, e, allow_drivers) from e
        try:
            _check_size(src, path, cap)
            yield src
        finally:
            src.close()


def _read(src, path: str, *args, **kwargs) -> np.ndarray:
    """`src.read(...)`, with read failures (truncated strips, bad compression) turned into BadSample."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return src.read(*args, **kwargs)
    except (RasterioError, OSError) as e:
        raise BadSample(
            Reason.TRUNCATED, f"cannot read the pixels of {path} (truncated or corrupt file): {e}", path
        ) from e


def _georef(src) -> tuple[object, Affine]:
    """(crs, transform) of an open dataset; crs None for files without georeference."""
    return (src.crs if src.crs else None), src.transform


# ------------------------------------------------------------------------------------------ band names


def band_names(src, band_order=None, use_descriptions: bool = True) -> tuple[str, ...]:
    """Canonical band names of an open multi-band dataset.

    The band descriptions win when `use_descriptions` and every band carries a valid, unique Sentinel-2 name;
    otherwise `band_order` (one name per band) is used. Raises `BadSample('missing_bands')` when neither works.
    """
    path = src.name
    if use_descriptions:
        descs = src.descriptions
        if descs and all(descs):
            try:
                names = canonical_list(descs)
            except ValueError:
                names = None
            if names is not None and len(names) == src.count:
                if band_order is not None and tuple(canonical_list(band_order)) != names:
                    log.debug("%s: band descriptions %s override the given order %s", path, names, band_order)
                return names
    if band_order is not None:
        try:
            names = canonical_list(band_order)
        except ValueError as e:
            raise ValueError(f"invalid band order {list(band_order)}: {e}") from e
        if len(names) != src.count:
            raise BadSample(
                Reason.MISSING_BANDS,
                f"{path} has {src.count} band(s) but the expected band order names {len(names)}: "
                f"{', '.join(names)}",
                path,
            )
        return names
    raise BadSample(
        Reason.MISSING_BANDS,
        f"{path}: band names unknown: the file has no valid Sentinel-2 band descriptions "
        f"({list(src.descriptions)}) and no band order was given",
        path,
    )


def fill_missing_bands(array: np.ndarray, have, want, how: str = "mean") -> np.ndarray:
    """Select `want` from `array` (bands `have`), filling absent bands.

    how='mean': an absent band is the per-pixel mean of *all* bands in `have` (rounded, cast to the array's
    dtype) -- what the original SegMunich pipeline appended to reach 12 channels.
    """
    have = canonical_list(have)
    want = canonical_list(want)
    if how != "mean":
        raise ValueError(f"fill_missing={how!r} is not supported; allowed: 'mean' or None")
    mean = array.astype(np.float64).mean(axis=0)
    if np.issubdtype(array.dtype, np.integer):
        mean = np.rint(mean)
    mean = mean.astype(array.dtype)
    return np.stack([array[have.index(b)] if b in have else mean for b in want])


# ---------------------------------------------------------------------------------------- multi-band


def read_multiband(
    path: str | os.PathLike,
    bands=None,
    *,
    band_order=None,
    use_descriptions: bool = True,
    window: Window | None = None,
    fill_missing: str | None = None,
) -> Raster:
    """Read a multi-band GeoTIFF, selecting `bands` by name (None: all, in file order).

    band_order: the file's band order when its descriptions do not name the bands (see `band_names`).
    use_descriptions: False makes `band_order` win over the file's descriptions.
    window: read only this window; the returned transform is the window's.
    fill_missing: None raises `BadSample('missing_bands')` naming absent requested bands; 'mean' fills them with
        the per-pixel mean of the file's bands.
    """
    path = os.fspath(path)
    with open_raster(path) as src:
        names = band_names(src, band_order, use_descriptions)
        want = names if bands is None else canonical_list(bands)
        missing = [b for b in want if b not in names]
        if missing and fill_missing is None:
            raise BadSample(
                Reason.MISSING_BANDS,
                f"{path} lacks requested band(s) {', '.join(missing)}; it has {', '.join(names)}",
                path,
            )
        if missing:
            arr = _read(src, path, window=window)
            arr = fill_missing_bands(arr, names, want, fill_missing)
        else:
            arr = _read(src, path, indexes=[names.index(b) + 1 for b in want], window=window)
        crs, transform = _georef(src)
        if window is not None:
            transform = window_transform(src.transform, window)
        return Raster(
            arr,
            tuple(want),
            crs,
            transform,
            src.nodata,
            path,
            {"file_bands": names, "filled_bands": tuple(missing)},
        )


# --------------------------------------------------------------------------------- per-band files


def grid_of(path: str | os.PathLike, window: Window | None = None) -> Grid:
    """The grid of a raster file (or of a window of it)."""
    path = os.fspath(path)
    with open_raster(path) as src:
        crs, transform = _georef(src)
        if window is None:
            return Grid(crs, transform, src.height, src.width)
        window = Window(*(int(round(v)) for v in (window.col_off, window.row_off, window.width, window.height)))
        return Grid(crs, window_transform(transform, window), int(window.height), int(window.width))


def window_transform(transform: Affine, window: Window) -> Affine:
    """Affine transform of `window` within a grid of `transform` (same as rasterio's, without its warnings)."""
    a, b, c, d, e, f = transform[:6]
    x, y = window.col_off, window.row_off
    return Affine(a, b, c + a * x + b * y, d, e, f + d * x + e * y)


def _has_georef(src) -> bool:
    return bool(src.crs) or src.transform != Affine.identity()


def _near_int(x: float, tol: float = 1e-6) -> bool:
    return abs(x - round(x)) < tol


def read_onto_grid(
    path: str | os.PathLike, grid: Grid, resampling: str = "bilinear", band: int = 1, fill_value=0
) -> np.ndarray:
    """Read one band of `path` resampled onto `grid`; returns (grid.height, grid.width) in native dtype.

    Same CRS: the grid's bounds become a (fractional) window of the file, read with out_shape = grid shape.
    Parts of the grid outside the file are `fill_value` (a boundless read). Different CRS: reprojected.
    A file without georeference is assumed to cover the grid's extent exactly (whole-file out_shape read).
    """
    path = os.fspath(path)
    rs = _RESAMPLING[resampling]
    with open_raster(path) as src:
        out_shape = (grid.height, grid.width)
        if not _has_georef(src) or grid.transform == Affine.identity():
            return _read(src, path, band, out_shape=out_shape, resampling=rs)
        if grid.crs is not None and src.crs and src.crs != grid.crs:
            from rasterio.warp import reproject

            dst = np.full(out_shape, fill_value, dtype=src.dtypes[band - 1])
            try:
                reproject(
                    rasterio.band(src, band), dst, dst_transform=grid.transform, dst_crs=grid.crs, resampling=rs
                )
            except (RasterioError, OSError) as e:
                raise BadSample(Reason.TRUNCATED, f"cannot read/reproject {path}: {e}", path) from e
            return dst
        win = _window_from_bounds(*grid.bounds, transform=src.transform)
        vals = (win.col_off, win.row_off, win.width, win.height)
        if all(_near_int(v) for v in vals):
            win = Window(*(int(round(v)) for v in vals))
        inside = (
            win.col_off > -1e-6
            and win.row_off > -1e-6
            and win.col_off + win.width < src.width + 1e-6
            and win.row_off + win.height < src.height + 1e-6
        )
        if inside:
            if win == Window(0, 0, src.width, src.height) and (src.height, src.width) == out_shape:
                return _read(src, path, band)
            return _read(src, path, band, window=win, out_shape=out_shape, resampling=rs)
        log.debug("%s: grid extends beyond the file; boundless read filled with %s", path, fill_value)
        return _read(
            src, path, band, window=win, out_shape=out_shape, resampling=rs, boundless=True, fill_value=fill_value
        )


def _esa_order(names) -> list[str]:
    return sorted(names, key=ALL_BANDS.index)


def read_band_files(
    files: Mapping[str, str | os.PathLike],
    bands=None,
    *,
    ref_band: str | None = None,
    grid: Grid | None = None,
    window: Window | None = None,
    resampling: str = "bilinear",
) -> Raster:
    """Read single-band files {band name: path} onto one 10 m grid and stack them as (C, H, W).

    bands: output order (None: every band present, in ESA order). Missing requested bands raise
        `BadSample('missing_bands')` naming them.
    ref_band: band whose grid is the target (default: the first of B2, B4, B3, B8 present; else the file with the
        finest pixels). grid: an explicit target grid instead (e.g. the grid of another date).
    window: a window on the reference grid (big scenes); the returned transform is the window's.
    resampling: 'bilinear' (default, see the module docstring), 'cubic', 'nearest', 'average', 'cubic_spline'.
    """
    if resampling not in _RESAMPLING:
        raise ValueError(f"resampling={resampling!r} is not supported; allowed: {', '.join(_RESAMPLING)}")
    files = {canonical(k): os.fspath(v) for k, v in files.items()}
    want = _esa_order(files) if bands is None else list(canonical_list(bands))
    missing = [b for b in want if b not in files]
    if missing:
        where = os.path.dirname(next(iter(files.values()))) if files else "(no files)"
        raise BadSample(
            Reason.MISSING_BANDS,
            f"band file(s) {', '.join(missing)} missing in {where}; found {', '.join(_esa_order(files)) or 'none'}",
            where,
        )
    ref_path = None
    if grid is None:
        if ref_band is not None:
            ref_band = canonical(ref_band)
            if ref_band not in files:
                raise BadSample(Reason.MISSING_BANDS, f"reference band {ref_band} has no file", "")
        else:
            ref_band = next((b for b in TEN_M_BANDS if b in files), None)
            if ref_band is None:  # no 10 m band: the finest grid among the files
                ref_band = min(files, key=lambda b: abs(grid_of(files[b]).transform.a))
        ref_path = files[ref_band]
        grid = grid_of(ref_path, window)
    elif window is not None:
        raise ValueError("pass either grid= or window=, not both")
    arrays = [read_onto_grid(files[b], grid, resampling) for b in want]
    dtype = np.result_type(*arrays) if arrays else np.uint16
    out = np.stack(arrays).astype(dtype, copy=False) if arrays else np.empty((0, *grid.shape), dtype)
    return Raster(
        out,
        tuple(want),
        grid.crs,
        grid.transform,
        None,
        ref_path or "",
        {"files": {b: files[b] for b in want}, "ref_band": ref_band, "resampling": resampling},
    )


# ----------------------------------------------------------------------------------------- masks etc.


def read_mask(path: str | os.PathLike, allow_drivers=("GTiff", "PNG")) -> tuple[np.ndarray, object, Affine]:
    """First band of a label/mask raster (GeoTIFF or PNG) as (H, W), with crs (None if absent) and transform."""
    path = os.fspath(path)
    with open_raster(path, allow_drivers=allow_drivers) as src:
        arr = _read(src, path, 1)
        crs, transform = _georef(src)
        return arr, crs, transform


def iter_windows(height: int, width: int, size: int, stride: int | None = None) -> Iterator[Window]:
    """Windows of `size` x `size` covering a height x width scene, row-major; `stride` defaults to `size`.

    The last row/column of windows is shifted back to end at the scene's edge (no partial windows), unless the
    scene is smaller than `size`, in which case one window covers it.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    stride = size if stride is None else stride
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")

    def starts(n):
        if n <= size:
            return [0]
        s = list(range(0, n - size + 1, stride))
        if s[-1] != n - size:
            s.append(n - size)
        return s

    for r in starts(height):
        for c in starts(width):
            yield Window(c, r, min(size, width), min(size, height))
