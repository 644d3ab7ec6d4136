"""GEO-Bench (Lacoste et al. 2023, ServiceNow/geo-bench v1.0): one reader for every task folder, read without the
`geobench` package and without unpickling its `task_specs.pkl`.

Layout (one task folder as downloaded and unzipped, e.g. ``classification_v1.0/m-eurosat``)::

    <root>/<sample>.hdf5              one HDF5 file per sample: one 2-D dataset per band, named by GEO-Bench's
                                      band descriptor ("04 - Red", "08A - Vegetation Red Edge"; with a date
                                      suffix in dated tasks, "04 - Red_2019-11-05"), plus a "label" dataset for
                                      segmentation masks; a file attribute "pickle" holds the pickled band
                                      metadata (name, alternative names, wavelength, resolution, date,
                                      transform, CRS per band), the band order and the classification label
    <root>/default_partition.json     {"train": [sample names], "valid": [...], "test": [...]}
    <root>/<name>_partition.json      other partitions (``0.01x_train``, ...): option ``partition=<name>``
    <root>/label_map.json             single-label tasks: {"<class index>": [sample names]}
    <root>/label_stats.json           multi-label tasks: {sample name: multi-hot}; segmentation: class frequencies
    <root>/band_stats.json            per-band mean / std / min / max (see `GeoBench.band_statistics`)
    <root>/task_specs.pkl             GEO-Bench's pickled task object: never read (unpickling it runs code)

Bands: a dataset's descriptor (date suffix removed) names a Sentinel-2, Landsat 8/9 OLI or RGB band through the
GEO-Bench band tables below (`GEOBENCH_BANDS`); the sensor comes from the pickled band metadata (GEO-Bench's
``Sentinel2`` / ``Landsat8`` / RGB ``SpectralBand`` records), else from the descriptors themselves (a name only
Landsat has, such as "05 - NIR", means OLI; "Red"/"Green"/"Blue" mean RGB), else Sentinel-2; option
``sensor=`` forces it. Bands no table names (Sentinel-1 channels of m-so2sat, "Cloud Probability" of
m-cashew-plant) are left out and listed in ``meta['skipped_bands']``. ``bands=None`` returns every named band in
the sensor's product order (ESA order for Sentinel-2).

Dates: a dated task stores one date per sample (m-cashew-plant); a sample whose bands carry several dates is
refused unless ``date=`` picks one ("YYYY-MM-DD", "first" or "last").

Labels (``task``: auto from the task folder's name, else from the files present):

* ``classification``: int class index from ``label_map.json`` (else from the file's pickled attributes);
* ``multilabel``: float32 multi-hot from ``label_stats.json`` (else from the attributes); for m-bigearthnet the
  43 CORINE classes in BigEarthNet's order, or the 19-class nomenclature with ``nomenclature=19``;
* ``segmentation``: int64 (H, W) mask from the file's "label" dataset.

The pickled attributes are read with a restricted unpickler that builds GEO-Bench's metadata records as plain
field holders and allows only dates, NumPy arrays/scalars and a few containers besides: any other global (code)
is refused, never imported. A sample whose attributes are refused still reads (pixels and JSON labels need none
of them; ``meta['attributes']`` says why), unless its label lives only there (then `bad_label`).

Hostile files: a file that is not HDF5 is `unreadable`; one with a valid signature that HDF5 cannot read is
`truncated`; datasets stored outside the file (external links, virtual datasets, external raw storage) are
refused, so a sample cannot make the reader open another file; declared sizes are checked against
`SPECTRALGPT_MAX_RASTER_BYTES` before any pixel is read.

Splits: the partition's "train" / "valid" / "test" lists (samples the partition does not list are not part of
it); without any ``*_partition.json``, every ``<root>/*.hdf5`` with a hash split (80/10/10).
Sample id: the sample name (file stem). Georeference: from the pickled metadata when present, else none.
Needs h5py (``pip install 'spectralgpt[geobench]'``).
"""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import pickle
import re
from collections import OrderedDict

import numpy as np

from spectralgpt.bands import sensor_bands
from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.data.sources.base import Entry, SourceDataset, resolve_in_root
from spectralgpt.data.sources.bigearthnet import LABELS_19, LABELS_43, TO_19
from spectralgpt.data.sources.eurosat import CLASSES as EUROSAT_CLASSES
from spectralgpt.io.raster import MAX_RASTER_BYTES_ENV, max_raster_bytes

log = logging.getLogger(__name__)

#: GEO-Bench band descriptors -> canonical band ids, per sensor (GEO-Bench's sentinel2_13_bands,
#: landsat8_9_bands and make_rgb_bands tables)
GEOBENCH_BANDS: dict[str, dict[str, str]] = {
    "s2": {
        "01 - Coastal aerosol": "B1", "02 - Blue": "B2", "03 - Green": "B3", "04 - Red": "B4",
        "05 - Vegetation Red Edge": "B5", "06 - Vegetation Red Edge": "B6", "07 - Vegetation Red Edge": "B7",
        "08 - NIR": "B8", "08A - Vegetation Red Edge": "B8A", "09 - Water vapour": "B9",
        "10 - SWIR - Cirrus": "B10", "11 - SWIR": "B11", "12 - SWIR": "B12",
    },
    "oli": {
        "01 - Coastal aerosol": "OLI:B1", "02 - Blue": "OLI:B2", "03 - Green": "OLI:B3", "04 - Red": "OLI:B4",
        "05 - NIR": "OLI:B5", "06 - SWIR1": "OLI:B6", "07 - SWIR2": "OLI:B7", "09 - Cirrus": "OLI:B9",
        "10 - Tirs1": "OLI:B10",
    },
    "rgb": {"Red": "RGB:RED", "Green": "RGB:GREEN", "Blue": "RGB:BLUE"},
}
#: GEO-Bench's band-metadata classes -> sensor
_INFO_SENSOR = {"Sentinel2": "s2", "Landsat8": "oli"}

SO2SAT_CLASSES = ("Compact high rise", "Compact mid rise", "Compact low rise", "Open high rise", "Open mid rise",
                  "Open low rise", "Lightweight low rise", "Large low rise", "Sparsely built", "Heavy industry",
                  "Dense trees", "Scattered trees", "Bush, scrub", "Low plants", "Bare rock or paved",
                  "Bare soil or sand", "Water")
FORESTNET_CLASSES = ("Oil palm plantation", "Timber plantation", "Other large-scale plantations",
                     "Grassland shrubland", "Small-scale agriculture", "Small-scale mixed plantation",
                     "Small-scale oil palm plantation", "Mining", "Fish pond", "Logging", "Secondary forest", "Other")
CASHEW_CLASSES = ("no data", "well-managed plantation", "poorly-managed plantation", "non-plantation", "residential",
                  "background", "uncertain")
PV_CLASSES = ("no solar pv", "solar pv")

#: what is known of the published task folders (name -> task, class names, sensor)
DATASETS: dict[str, dict] = {
    "m-bigearthnet": dict(task="multilabel", classes=LABELS_43, sensor="s2"),
    "m-eurosat": dict(task="classification", classes=EUROSAT_CLASSES, sensor="s2"),
    "m-brick-kiln": dict(task="classification", classes=("not brick kiln", "brick kiln"), sensor="s2"),
    "m-so2sat": dict(task="classification", classes=SO2SAT_CLASSES, sensor="s2"),
    "m-forestnet": dict(task="classification", classes=FORESTNET_CLASSES, sensor="oli"),
    "m-pv4ger": dict(task="classification", classes=PV_CLASSES, sensor="rgb"),
    "m-cashew-plant": dict(task="segmentation", classes=CASHEW_CLASSES, sensor="s2"),
    "m-pv4ger-seg": dict(task="segmentation", classes=PV_CLASSES, sensor="rgb"),
    "m-sa-crop-type": dict(task="segmentation", classes=None, sensor="s2"),
    "m-chesapeake-landcover": dict(task="segmentation", classes=None, sensor=None),
    "m-nz-cattle": dict(task="segmentation", classes=None, sensor="rgb"),
    "m-neontree": dict(task="segmentation", classes=None, sensor=None),
}
_ALIASES = {"m-cashew-plantation": "m-cashew-plant", "m-chesapeake": "m-chesapeake-landcover"}
TASKS = ("classification", "multilabel", "segmentation")
_PARTITION_SPLITS = {"train": "train", "valid": "val", "val": "val", "test": "test"}
_DATE = re.compile(r"^(?P<name>.+?)_(?P<date>\d{4}-\d{2}-\d{2}(?:_[0-9A-Za-z:\-]*)?|NoDate)$")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_JSON_BYTES = 256 << 20  # a partition or label table of a million samples is a few tens of MB
MAX_ATTRIBUTE_BYTES = 64 << 20  # a sample's pickled metadata is a few KB


# ------------------------------------------------------------------------------- pickled metadata (safely)


class Record:
    """A GEO-Bench metadata object (band info, transform, CRS) rebuilt as a plain holder of its pickled fields.

    ``kind`` is the original class ('geobench.dataset.Sentinel2'); ``args`` the constructor arguments pickled
    with it (an Affine's six coefficients); the pickled state becomes attributes. Nothing of the original class
    runs."""

    kind = ""

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args = args
        return obj

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            state = {**(state[0] or {}), **(state[1] or {})}  # (dict state, slot state)
        if isinstance(state, dict):
            self.__dict__.update({str(k): v for k, v in state.items()})
        else:
            self.state = state

    def __repr__(self) -> str:
        return f"Record({self.kind}, {self.__dict__})"


_RECORD_TYPES: dict[str, type] = {}


def _record_type(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _RECORD_TYPES:
        _RECORD_TYPES[key] = type(name, (Record,), {"kind": key})
    return _RECORD_TYPES[key]


def _reconstructor(cls, base, state):
    """copyreg._reconstructor (protocols 0/1), for our records only."""
    if not (isinstance(cls, type) and issubclass(cls, Record)) or base is not object:
        raise pickle.UnpicklingError("copyreg._reconstructor is only allowed for metadata records")
    return cls.__new__(cls)


class _MetadataUnpickler(pickle.Unpickler):
    """Builds GEO-Bench's metadata records as `Record`s; allows dates, NumPy arrays and scalars, a few builtins."""

    _ALLOWED = {
        ("datetime", n) for n in ("date", "datetime", "time", "timedelta", "timezone")
    } | {
        (m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")
    } | {("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"), ("_codecs", "encode")} | {
        ("builtins", n) for n in ("set", "frozenset", "complex", "bytearray", "slice")
    }
    _RECORDS = {("affine", "Affine"), ("rasterio.crs", "CRS"), ("rasterio._crs", "_CRS")}

    def find_class(self, module, name):
        if module.split(".")[0] in ("geobench", "ccb") or (module, name) in self._RECORDS:
            return _record_type(module, name)
        if (module, name) == ("copyreg", "_reconstructor"):
            return _reconstructor
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in GEO-Bench metadata")


def read_attributes(raw) -> dict:
    """The dict GEO-Bench pickles into a sample's "pickle" attribute (the text of a Python bytes literal).

    Raises ValueError naming the problem (too large, not a bytes literal, a refused global, not a dict)."""
    if isinstance(raw, (bytes, np.bytes_)):
        raw = bytes(raw).decode("utf-8", "replace")
    if not isinstance(raw, str):
        raise ValueError(f"the 'pickle' attribute is a {type(raw).__name__}, not text")
    if len(raw) > MAX_ATTRIBUTE_BYTES:
        raise ValueError(f"the 'pickle' attribute is {len(raw)} characters, over the {MAX_ATTRIBUTE_BYTES} limit")
    try:
        data = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
        raise ValueError(f"the 'pickle' attribute is not a bytes literal: {type(e).__name__}") from None
    if not isinstance(data, bytes):
        raise ValueError(f"the 'pickle' attribute holds a {type(data).__name__}, not bytes")
    try:
        out = _MetadataUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError) as e:
        raise ValueError(f"refused the pickled metadata: {e}") from None
    if not isinstance(out, dict):
        raise ValueError(f"the pickled metadata is a {type(out).__name__}, not a dict")
    return out


def _georeference(band_attrs: dict) -> tuple[object, object]:
    """(crs, transform) from one band's metadata, when it carries them in a form we recognise."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError
    from rasterio.transform import Affine

    transform = crs = None
    t = band_attrs.get("transform") if isinstance(band_attrs, dict) else None
    coeffs = t.args if isinstance(t, Record) else t
    if isinstance(coeffs, (tuple, list)) and len(coeffs) in (6, 9) and all(
            isinstance(c, (int, float, np.number)) for c in coeffs):
        transform = Affine(*[float(c) for c in coeffs[:6]])
    c = band_attrs.get("crs") if isinstance(band_attrs, dict) else None
    state = getattr(c, "state", None) if isinstance(c, Record) else None
    if isinstance(c, Record) and state is None:
        state = c.__dict__.get("wkt") or c.__dict__.get("data") or c.__dict__.get("_wkt")
    try:
        if isinstance(state, dict) and "wkt" in state:
            state = state["wkt"]
        if isinstance(state, (str, dict)) and state:
            crs = CRS.from_user_input(state)
    except (CRSError, TypeError, ValueError):
        crs = None
    return crs, transform


def _band_record(band_attrs) -> dict:
    """What a band's pickled metadata says about it (GEO-Bench's BandInfo fields), JSON-friendly."""
    info = band_attrs.get("band_info") if isinstance(band_attrs, dict) else None
    if not isinstance(info, Record):
        return {}
    out = {"class": info.kind.rsplit(".", 1)[-1]}
    for field, key in (("name", "name"), ("wavelength", "wavelength_um"), ("spatial_resolution", "resolution_m")):
        v = info.__dict__.get(field)
        if isinstance(v, (str, int, float, np.number)) and not isinstance(v, bool):
            out[key] = v.item() if isinstance(v, np.number) else v
    alt = info.__dict__.get("alt_names")
    if isinstance(alt, (tuple, list)) and all(isinstance(a, str) for a in alt):
        out["alt_names"] = list(alt)
    if isinstance(band_attrs.get("spatial_resolution"), (int, float)):
        out["stored_resolution_m"] = band_attrs["spatial_resolution"]
    return out


# ------------------------------------------------------------------------------------------ the reader


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading GEO-Bench needs h5py: pip install 'spectralgpt[geobench]' (or h5py)") from None
    return h5py


def split_descriptor(key: str) -> tuple[str, str | None]:
    """'04 - Red_2019-11-05' -> ('04 - Red', '2019-11-05'); '04 - Red' -> ('04 - Red', None)."""
    m = _DATE.match(key)
    return (m.group("name"), m.group("date")) if m else (key, None)


def _read_json(path: str, what: str):
    size = os.path.getsize(path)
    if size > MAX_JSON_BYTES:
        raise ValueError(f"geobench: {path} is {size} bytes, over the {MAX_JSON_BYTES}-byte limit for a {what}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"geobench: cannot read the {what} {path}: {e}") from e


class GeoBench(SourceDataset):
    kind = "geobench"
    LAYOUT = ("<root>/<sample>.hdf5 (one GEO-Bench task folder, e.g. classification_v1.0/m-eurosat: one dataset "
              "per band) + <root>/default_partition.json")
    OPTIONS = {"partition": "default", "task": None, "sensor": "auto", "date": None, "nomenclature": 43,
               "class_names": None, "dataset": None}

    # -- listing ---------------------------------------------------------------------------------------
    def _index(self) -> list[Entry]:
        o = self.options
        if o["task"] is not None and o["task"] not in TASKS:
            raise ValueError(f"geobench: task={o['task']!r}; allowed: None (auto), {', '.join(TASKS)}")
        if o["sensor"] != "auto" and o["sensor"] not in GEOBENCH_BANDS:
            raise ValueError(f"geobench: sensor={o['sensor']!r}; allowed: auto, {', '.join(GEOBENCH_BANDS)}")
        if o["nomenclature"] not in (19, 43):
            raise ValueError(f"geobench: nomenclature={o['nomenclature']!r}; allowed: 43, 19 (m-bigearthnet)")
        if o["date"] is not None and o["date"] not in ("first", "last") and not re.fullmatch(
                r"\d{4}-\d{2}-\d{2}", str(o["date"])):
            raise ValueError(f"geobench: date={o['date']!r}; allowed: None, 'first', 'last' or 'YYYY-MM-DD'")
        name = str(o["dataset"] or os.path.basename(self.root)).lower()
        self.dataset_name = _ALIASES.get(name, name)
        self.known = DATASETS.get(self.dataset_name, {})
        entries = self._partition_entries()
        self.task = o["task"] or self.known.get("task") or self._detect_task(entries)
        self._labels = self._label_table(self.task)
        for e in entries:
            if e.error is None and e.id in self._labels:
                e.info["label"] = self._labels[e.id]
        return [e for e in entries if self._keep(e.split)]

    def _partition_entries(self) -> list[Entry]:
        part = str(self.options["partition"])
        files = {f[: -len("_partition.json")]: f for f in os.listdir(self.root) if f.endswith("_partition.json")}
        if not files:
            out = []
            for f in sorted(os.listdir(self.root)):
                if f.endswith(".hdf5") and os.path.isfile(os.path.join(self.root, f)):
                    sid = f[: -len(".hdf5")]
                    out.append(Entry(sid, os.path.join(self.root, f), self._split_of(sid)))
            return out
        if part not in files:
            raise ValueError(f"geobench: no partition {part!r} in {self.root} (have {', '.join(sorted(files))})")
        table = _read_json(os.path.join(self.root, files[part]), "partition")
        if not isinstance(table, dict):
            raise ValueError(f"geobench: {files[part]} is not a mapping of split name -> sample names")
        out = []
        for split_name, names in table.items():
            split = _PARTITION_SPLITS.get(str(split_name).lower())
            if split is None or not isinstance(names, list):
                raise ValueError(f"geobench: {files[part]} has split {split_name!r}; expected train, valid, test "
                                 "each with a list of sample names")
            for n in names:
                if not isinstance(n, str) or not n.strip():
                    raise ValueError(f"geobench: {files[part]} lists {n!r} in {split_name}, not a sample name")
                path, err = resolve_in_root(self.root, f"{n.strip()}.hdf5")
                out.append(Entry(n.strip(), path, split, {}, err))
        return out

    def _detect_task(self, entries: list[Entry]) -> str:
        if os.path.exists(os.path.join(self.root, "label_map.json")):
            return "classification"
        first = next((e for e in entries if e.error is None and os.path.isfile(e.path)), None)
        if first is not None:
            try:
                with self._open(first.path) as fp:
                    if "label" in fp:
                        return "segmentation"
                    label = self._attributes(fp, first.path)[0].get("label")
            except BadSample:
                label = None
            if isinstance(label, (np.ndarray, list, tuple)):
                return "multilabel"
        if os.path.exists(os.path.join(self.root, "label_stats.json")):
            return "multilabel"
        return "classification"

    def _label_table(self, task: str) -> dict:
        """{sample: label} from the task folder's JSON tables (classification, multi-label); {} otherwise."""
        if task == "classification" and os.path.exists(p := os.path.join(self.root, "label_map.json")):
            table = _read_json(p, "label map")
            if not isinstance(table, dict):
                raise ValueError(f"geobench: {p} is not a mapping of class -> sample names")
            out = {}
            for cls, names in table.items():
                index = self._class_index(cls)
                for n in names if isinstance(names, list) else ():
                    out[str(n)] = index
            return out
        if task == "multilabel" and os.path.exists(p := os.path.join(self.root, "label_stats.json")):
            table = _read_json(p, "label table")
            if not isinstance(table, dict):
                raise ValueError(f"geobench: {p} is not a mapping of sample name -> multi-hot")
            return {str(k): v for k, v in table.items()}
        return {}

    def _class_index(self, cls) -> int | str:
        """A label_map key as a class index: '3' -> 3, a class name -> its index, else the key (bad_label later)."""
        s = str(cls).strip()
        if re.fullmatch(r"\d{1,6}", s):
            return int(s)
        names = self.class_names or ()
        return names.index(s) if s in names else s

    @property
    def class_names(self) -> tuple[str, ...] | None:
        given = self.options.get("class_names")
        if given is not None:
            return tuple(str(c) for c in given)
        known = getattr(self, "known", {}).get("classes")
        if known is not None and self.options.get("nomenclature") == 19 and known == LABELS_43:
            return LABELS_19
        return known

    # -- reading ---------------------------------------------------------------------------------------
    def _open(self, path: str):
        h5py = _h5py()
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except FileNotFoundError:
            raise BadSample(Reason.MISSING_FILE, f"sample file {path} does not exist", path) from None
        except OSError as e:
            raise BadSample(Reason.UNREADABLE, f"cannot read {path}: {e}", path) from e
        if not head:
            raise BadSample(Reason.TRUNCATED, f"{path} is empty (0 bytes): truncated download or copy", path)
        if head != _HDF5_SIGNATURE and not self._signature_later(path):
            raise BadSample(Reason.UNREADABLE, f"{path} is not an HDF5 file (no HDF5 signature)", path)
        try:
            return h5py.File(path, "r", locking=False)
        except (OSError, ValueError) as e:
            raise BadSample(Reason.TRUNCATED, f"{path} has an HDF5 signature but cannot be read (truncated or "
                            f"corrupt): {e}", path) from e

    @staticmethod
    def _signature_later(path: str) -> bool:
        """HDF5 files with a user block carry the signature at offset 512, 1024, 2048, ..."""
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            off = 512
            while off + 8 <= size and off <= 1 << 20:
                f.seek(off)
                if f.read(8) == _HDF5_SIGNATURE:
                    return True
                off *= 2
        return False

    @staticmethod
    def _attributes(fp, path: str) -> tuple[dict, str | None]:
        """(the pickled metadata dict or {}, why it was refused or None)."""
        if "pickle" not in fp.attrs:
            return {}, "absent"
        try:
            return read_attributes(fp.attrs["pickle"]), None
        except (ValueError, OSError) as e:
            log.debug("%s: %s", path, e)
            return {}, str(e)

    def _dataset(self, fp, key: str, path: str):
        """The h5py dataset `key`, refused when it is a link or keeps its data outside the file."""
        h5py = _h5py()
        link = fp.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise BadSample(Reason.UNREADABLE, f"{path}: dataset {key!r} is a {type(link).__name__} (a link to data "
                            "elsewhere); only data stored in the file is read", path)
        ds = fp[key]
        if not isinstance(ds, h5py.Dataset):
            raise BadSample(Reason.UNREADABLE, f"{path}: {key!r} is a group, not a band dataset", path)
        if ds.is_virtual or ds.external:
            raise BadSample(Reason.UNREADABLE, f"{path}: dataset {key!r} keeps its data in other files (virtual or "
                            "external storage); only data stored in the file is read", path)
        if not (np.issubdtype(ds.dtype, np.number) or ds.dtype == np.bool_):
            raise BadSample(Reason.WRONG_DTYPE, f"{path}: dataset {key!r} has dtype {ds.dtype}, not numeric", path)
        return ds

    def _sensor(self, attrs: dict, names) -> str:
        if self.options["sensor"] != "auto":
            return self.options["sensor"]
        for v in attrs.values():
            info = v.get("band_info") if isinstance(v, dict) else None
            if isinstance(info, Record):
                cls = info.kind.rsplit(".", 1)[-1]
                if cls in _INFO_SENSOR:
                    return _INFO_SENSOR[cls]
                if cls == "SpectralBand" and info.__dict__.get("name") in GEOBENCH_BANDS["rgb"]:
                    return "rgb"
        if self.known.get("sensor"):
            return self.known["sensor"]
        names = set(names)
        if names & (set(GEOBENCH_BANDS["oli"]) - set(GEOBENCH_BANDS["s2"])):
            return "oli"
        if names & set(GEOBENCH_BANDS["rgb"]) and not names & set(GEOBENCH_BANDS["s2"]):
            return "rgb"
        return "s2"

    def _pick_date(self, dates: list[str], path: str) -> str | None:
        dates = sorted(set(dates))
        if len(dates) <= 1:
            return dates[0] if dates else None
        want = self.options["date"]
        if want is None:
            raise BadSample(Reason.UNREADABLE, f"{path} is a time series of {len(dates)} dates ({', '.join(dates)});"
                            " pass the reader option date='first', 'last' or 'YYYY-MM-DD'", path)
        if want in ("first", "last"):
            return dates[0] if want == "first" else dates[-1]
        match = [d for d in dates if d.startswith(want)]
        if not match:
            raise BadSample(Reason.MISSING_BANDS, f"{path} has no date {want} (dates: {', '.join(dates)})", path)
        return match[0]

    def _read(self, e: Entry) -> Sample:
        with self._open(e.path) as fp:
            attrs, refused = self._attributes(fp, e.path)
            keys = [k for k in fp.keys() if k != "label"]
            split_keys = {k: split_descriptor(k) for k in keys}
            sensor = self._sensor(attrs, [n for n, _ in split_keys.values()])
            table = GEOBENCH_BANDS[sensor]
            named = {k: (table[n], d) for k, (n, d) in split_keys.items() if n in table}
            skipped = sorted(k for k in keys if k not in named)
            date = self._pick_date([d for _, d in named.values() if d is not None], e.path)
            by_band: dict[str, str] = {}
            for k, (bid, d) in named.items():
                if d is None or d == date:
                    if bid in by_band:
                        raise BadSample(Reason.UNREADABLE, f"{e.path}: datasets {by_band[bid]!r} and {k!r} are both "
                                        f"band {bid}", e.path)
                    by_band[bid] = k
            order = [b for b in sensor_bands(sensor) if b in by_band]
            want = list(self.bands) if self.bands is not None else order
            missing = [b for b in want if b not in by_band]
            if missing:
                raise BadSample(Reason.MISSING_BANDS, f"missing band(s) {', '.join(missing)}: {e.path} has "
                                f"{', '.join(order) or 'no named band'} ({sensor} descriptors)", e.path)
            if not want:
                raise BadSample(Reason.MISSING_BANDS, f"{e.path} holds no band GEO-Bench's {sensor} table names "
                                f"(datasets: {', '.join(keys) or 'none'})", e.path)
            dsets = [self._dataset(fp, by_band[b], e.path) for b in want]
            shapes = {by_band[b]: ds.shape for b, ds in zip(want, dsets)}
            if len(set(shapes.values())) != 1 or len(dsets[0].shape) != 2:
                raise BadSample(Reason.WRONG_SIZE, f"{e.path}: bands must be 2-D and of one shape; got "
                                + ", ".join(f"{k} {list(s)}" for k, s in shapes.items()), e.path)
            h, w = dsets[0].shape
            dtype = np.result_type(*[ds.dtype for ds in dsets])
            size = h * w * len(dsets) * dtype.itemsize
            if size > (cap := max_raster_bytes()):
                raise BadSample(Reason.WRONG_SIZE, f"{e.path} declares {len(dsets)} x {h} x {w} pixels "
                                f"({size / 2**30:.1f} GiB), over the {cap / 2**30:.1f} GiB limit; refused before "
                                f"reading (raise {MAX_RASTER_BYTES_ENV} if it is genuine)", e.path)
            try:
                image = np.stack([ds[()].astype(dtype, copy=False) for ds in dsets])
                label = self._label(fp, e, attrs, refused, (h, w))
            except OSError as ex:
                raise BadSample(Reason.TRUNCATED, f"cannot read the pixels of {e.path} (truncated or corrupt "
                                f"file): {ex}", e.path) from ex
        crs, transform = _georeference(attrs.get(by_band[want[0]], {}))
        meta = {
            "dataset": self.dataset_name, "task": self.task, "partition": self.options["partition"],
            "sensor": sensor, "file_bands": [by_band[b] for b in want], "skipped_bands": skipped,
            "date": date, "attributes": "read" if refused is None else f"not used: {refused}",
            "band_metadata": {b: rec for b in want if (rec := _band_record(attrs.get(by_band[b])))},
        }
        return Sample(id=e.id, image=image, bands=tuple(want), label=label, crs=crs, transform=transform,
                      source=e.path, split=e.split, meta=meta)

    def _label(self, fp, e: Entry, attrs: dict, refused: str | None, shape):
        if self.task == "segmentation":
            if "label" not in fp:
                raise BadSample(Reason.MISSING_FILE, f"{e.path} has no 'label' dataset (segmentation mask)", e.path)
            ds = self._dataset(fp, "label", e.path)
            declared = tuple(ds.shape)
            if len(declared) == 3 and 1 in (declared[0], declared[-1]):  # (1, H, W) or (H, W, 1)
                declared = declared[1:] if declared[0] == 1 else declared[:-1]
            if declared != tuple(shape):  # checked before reading: a forged shape is never allocated
                raise BadSample(Reason.WRONG_SIZE, f"{e.path}: label is {list(ds.shape)}, image {list(shape)}",
                                e.path)
            mask = np.asarray(ds[()]).reshape(declared)
            if not np.issubdtype(mask.dtype, np.integer) and not np.all(np.isfinite(mask) & (mask == np.round(mask))):
                raise BadSample(Reason.BAD_LABEL, f"{e.path}: the mask holds non-integer values", e.path)
            return mask.astype(np.int64)
        value = e.info.get("label")
        if value is None:
            if "label" not in attrs:
                why = "they have no 'label'" if refused is None else f"they were refused ({refused})"
                raise BadSample(Reason.BAD_LABEL, f"{e.path}: no label: the task folder's label table does not list "
                                f"it and the file's attributes cannot supply it: {why}", e.path)
            value = attrs["label"]
        return self._label_value(value, e.path)

    def _label_value(self, value, path: str):
        names = self.class_names
        if self.task == "classification":
            if isinstance(value, np.ndarray) and value.size == 1:
                value = value.item()
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise BadSample(Reason.BAD_LABEL, f"{path}: label {value!r} is not a class index", path)
            if value < 0 or (names is not None and value >= len(names)):
                raise BadSample(Reason.UNKNOWN_LABEL, f"{path}: class index {int(value)} is outside the "
                                f"{len(names) if names else 0} classes of {self.dataset_name}", path)
            return int(value)
        try:
            y = np.asarray(value, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise BadSample(Reason.BAD_LABEL, f"{path}: label {value!r} is not a multi-hot vector", path) from None
        if not np.all((y == 0) | (y == 1)):
            raise BadSample(Reason.BAD_LABEL, f"{path}: multi-hot label holds values other than 0 and 1", path)
        if self.known.get("classes") == LABELS_43:
            if y.size != len(LABELS_43):
                raise BadSample(Reason.BAD_LABEL, f"{path}: {y.size} labels, expected BigEarthNet's 43", path)
            if self.options["nomenclature"] == 19:
                out = np.zeros(len(LABELS_19), np.float32)
                for i in np.flatnonzero(y):
                    if TO_19[LABELS_43[i]] is not None:
                        out[LABELS_19.index(TO_19[LABELS_43[i]])] = 1.0
                return out
        elif names is not None and y.size != len(names):
            raise BadSample(Reason.BAD_LABEL, f"{path}: {y.size} labels, expected {len(names)}", path)
        return y

    # -- extras ----------------------------------------------------------------------------------------
    def band_statistics(self) -> dict[str, dict]:
        """``band_stats.json`` keyed by our band ids (mean, std, min, max, ... as GEO-Bench computed them on the
        training split); {} when the file is absent. Descriptors no band table names are left out."""
        path = os.path.join(self.root, "band_stats.json")
        if not os.path.exists(path):
            return {}
        table = _read_json(path, "band statistics")
        if not isinstance(table, dict):
            raise ValueError(f"geobench: {path} is not a mapping of band -> statistics")
        sensor = self.options["sensor"] if self.options["sensor"] != "auto" else self.known.get("sensor") or "s2"
        names = GEOBENCH_BANDS[sensor]
        out = OrderedDict()
        for key, stats in table.items():
            base, _ = split_descriptor(str(key))
            if base in names and isinstance(stats, dict):
                out[names[base]] = stats
        return dict(out)


__all__ = ["DATASETS", "GEOBENCH_BANDS", "GeoBench", "Record", "read_attributes", "split_descriptor"]
