"""The MLflow pyfunc model: our own model folder (model.safetensors + config.json) behind `Predictor`.

We log a pyfunc, not an `mlflow.pytorch` model: MLflow 3 saves PyTorch models through torch.export, which
freezes the input shapes of the example (a batch of one), and the preprocessing recipe would not travel with
it. Here the artifact is exactly the folder `save_model` wrote, so a registered model preprocesses raw
reflectance exactly as training did, and `code_paths` ships the `spectralgpt` package so it loads anywhere.

Inputs accepted by `predict` (all raw reflectance, any numeric dtype):

* a numpy array (B, C, H, W) or (C, H, W) in the model's band order (or in the order named by the ``bands``
  param), for change detection a dict is needed for the second date;
* a dict ``{"image": array, "image2": array (change detection), "bands": [names of the input's bands],
  "sensor": "hls"}`` (``sensor``, optional, qualifies plain names: "Blue" with "hls" is ``HLS:BLUE``);
* a pandas DataFrame with a ``path`` column (and ``path2`` for change detection) of GeoTIFF files: bands are
  selected by name (the file's band descriptions, else the ``bands`` param as the file's order).

The model's band order is its *input* bands: for a model fine-tuned on other bands (HLS's six, say) those, which
the band mapping recorded with it (``normalization.band_mapping``, also in the ``preprocessing`` artifact) maps
onto the model's twelve after normalisation, exactly as `Predictor` and ``spectralgpt predict`` do.

Images larger than the model's size are centre-cropped; smaller ones are refused. Output: probabilities
(B, K) for classifiers or (B, K, H, W) for dense tasks; for a DataFrame input, a DataFrame with one column
per class and ``predicted`` (for dense tasks each cell holds an H x W map).

Serving input policy (what a client of `mlflow models serve` may ask for; read from the environment of the
process that loads the model, at every request):

* ``SPECTRALGPT_SERVE_ROOTS``: folders (``os.pathsep``-separated) whose files a DataFrame ``path`` may name.
  Unset or empty: path inputs are refused. A path is accepted only when its real path (symlinks resolved) lies
  inside one of them; URLs (``http://``, ``s3://``, ``file://``, ...) and GDAL virtual paths (``/vsicurl/``,
  ``/vsitar/``, ...) are refused before anything is opened. Only the centre crop the model needs is read.
* ``SPECTRALGPT_SERVE_MAX_BATCH`` (default 64): images (or table rows) per request.
* ``SPECTRALGPT_SERVE_MAX_PIXELS`` (default 4194304, i.e. 64 images of 256 x 256): images x height x width per
  request, counted before cropping.

Every refused request raises an `MlflowException` with ``INVALID_PARAMETER_VALUE``, which the scoring server
answers with HTTP 400 and the message; messages name the problem and never quote file contents. Unexpected
failures are logged on the server and answered with a generic HTTP 500 message.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

import spectralgpt
from spectralgpt.models.checkpoint import read_config

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
RECIPE_ARTIFACT = "preprocessing"
DEVICE_ENV = "SPECTRALGPT_DEVICE"
#: distributions the model needs at load time (the project's runtime dependencies that inference imports)
RUNTIME_DISTRIBUTIONS = ("torch", "numpy", "rasterio", "pandas", "pyarrow", "safetensors", "pydantic", "pyyaml",
                         "torchmetrics")


ROOTS_ENV = "SPECTRALGPT_SERVE_ROOTS"
MAX_BATCH_ENV = "SPECTRALGPT_SERVE_MAX_BATCH"
MAX_PIXELS_ENV = "SPECTRALGPT_SERVE_MAX_PIXELS"
DEFAULT_MAX_BATCH = 64
DEFAULT_MAX_PIXELS = 64 * 256 * 256
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")  # any scheme (http:, s3:, file:, zip+https:, ...)


def _device() -> str:
    return os.environ.get(DEVICE_ENV, "auto")


class RequestError(ValueError):
    """A request the model refuses (the client's fault): answered with HTTP 400 and this message."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{name}={raw!r} must be >= 1")
    return value


@dataclass(frozen=True)
class ServePolicy:
    """What a request may ask for: path roots, images and pixels per request (see the module docstring)."""

    roots: tuple[str, ...] = ()
    max_batch: int = DEFAULT_MAX_BATCH
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_env(cls) -> "ServePolicy":
        roots = tuple(os.path.realpath(r) for r in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if r.strip())
        return cls(roots, _env_int(MAX_BATCH_ENV, DEFAULT_MAX_BATCH), _env_int(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS))

    def check_path(self, value) -> str:
        """The real path of a requested file when it lies inside an allowed root; else RequestError.

        Checked on the string alone before anything is opened; the answer does not say whether a refused file
        exists.
        """
        path = str(value)
        if not self.roots:
            raise RequestError(f"path inputs are disabled on this server (it names no {ROOTS_ENV}); "
                               "send the pixels as an array instead")
        if not path or "\x00" in path:
            raise RequestError(f"invalid path {path!r}")
        if _URL.match(path) or path.startswith("/vsi"):
            raise RequestError(f"path {path!r} refused: URLs and GDAL virtual paths are not read; "
                               "name a local file inside the server's allowed roots")
        real = os.path.realpath(path)
        if not any(os.path.commonpath([real, root]) == root for root in self.roots):
            raise RequestError(f"path {path!r} refused: it is outside the server's allowed roots")
        return real

    def check_size(self, n: int, h: int, w: int, what: str) -> None:
        if n > self.max_batch:
            raise RequestError(f"{what}: {n} images in one request, over this server's limit of {self.max_batch} "
                               f"({MAX_BATCH_ENV}); split the request")
        if n * h * w > self.max_pixels:
            raise RequestError(f"{what}: {n} x {h} x {w} = {n * h * w} pixels in one request, over this server's "
                               f"limit of {self.max_pixels} ({MAX_PIXELS_ENV}); send smaller or fewer images")


def centre_crop(x: np.ndarray, size: int, what: str = "image") -> np.ndarray:
    """Centre-crop the last two axes to `size`; refuse images smaller than `size`."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"{what} is {h}x{w} pixels, smaller than the model's {size}x{size}; "
                         f"pass images of at least {size}x{size} (larger ones are centre-cropped)")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def _band_list(bands, sensor=None) -> list[str] | None:
    if bands is None:
        return None
    if isinstance(bands, str):
        try:
            bands = json.loads(bands) if bands.strip().startswith("[") else bands.split(",")
        except json.JSONDecodeError:
            raise RequestError(f"bands {bands!r} is neither a JSON list nor comma-separated names") from None
    names = [str(b).strip() for b in np.asarray(bands).ravel().tolist()]
    from spectralgpt.bands import canonical_list

    try:
        return list(canonical_list(names, None if sensor is None else str(sensor)))
    except ValueError as e:
        raise RequestError(f"bands: {e}") from None


def _batch_size(params: dict, policy: ServePolicy) -> int:
    """Images per forward pass (the request is cut into chunks of it), at most the server's batch limit; the
    signature's default (16) arrives with every served request, so a larger value is lowered, not refused."""
    raw = params.get("batch_size") or 16
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise RequestError(f"batch_size {raw!r} is not an integer") from None
    if value < 1:
        raise RequestError(f"batch_size must be >= 1, got {value}")
    return min(value, policy.max_batch)


def class_names_of(predictor) -> list[str]:
    k = predictor.cfg.num_classes if hasattr(predictor.cfg, "num_classes") else None
    names = predictor.class_names  # the saved ones, else the task's (change detection: no_change, change)
    if not names:
        names = [f"class_{i}" for i in range(int(k or 0))]
    return [str(n) for n in names]


def _client_message(path, e) -> str:
    """What a client is told about a file it named that cannot be used: the reason and our own description,
    never GDAL's text (which may carry bytes of the file)."""
    reason = getattr(e, "reason", "unreadable")
    if reason in ("truncated", "unreadable"):
        return f"cannot read {str(path)!r}: {reason} (corrupt, truncated or unreadable file)"
    return str(e)


class SpectralGPTPyfunc(PythonModel):
    """Wraps `spectralgpt.inference.Predictor`; the model folder is the artifact ``model``."""

    # MLflow 3 wraps a hint-less `predict` and warns, asking for type hints to validate inputs; ours are a union
    # (array, dict, table of paths) its type-hint schemas cannot express, and `predict` validates them itself.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        from spectralgpt.inference.predictor import Predictor

        self.predictor = Predictor.load(context.artifacts[MODEL_ARTIFACT], device=_device())
        self.class_names = class_names_of(self.predictor)

    # -------------------------------------------------------------------------------------- inputs

    def _array(self, x, what: str, bands, policy: ServePolicy) -> np.ndarray:
        """A request's image as a numeric (B, C, H, W) or (C, H, W) array within the policy's limits."""
        try:
            x = np.asarray(x)
            if x.dtype == object:
                x = x.astype(np.float32)
        except (TypeError, ValueError):
            raise RequestError(f"{what}: not a rectangular numeric array (rows of different lengths?)") from None
        if x.dtype.kind not in "uif":
            raise RequestError(f"{what}: expected numeric raw reflectance, got dtype {x.dtype}")
        if x.ndim not in (3, 4):
            raise RequestError(f"{what}: expected raw reflectance (B, C, H, W) or (C, H, W), got shape {x.shape}")
        n = x.shape[0] if x.ndim == 4 else 1
        policy.check_size(n, x.shape[-2], x.shape[-1], what)
        model_order = bands is None or list(bands) == list(self.predictor.bands)  # serving passes the default
        want = len(self.predictor.bands) if model_order else len(bands)
        if x.shape[-3] != want:
            named = f"the model's bands ({', '.join(self.predictor.bands)})" if model_order else "the `bands` given"
            raise RequestError(f"{what}: {x.shape[-3]} bands, but {named} name {want}")
        if bands is not None and (missing := [b for b in self.predictor.bands if b not in bands]):
            raise RequestError(f"{what}: the model needs band(s) {', '.join(missing)}, absent from `bands`")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise RequestError(f"{what}: contains NaN or infinite values")
        return centre_crop(x, self.predictor.size, what)

    def _read(self, path: str, band_order) -> np.ndarray:
        """Only the centre crop the model needs is read from the (already allowed) file."""
        from rasterio.windows import Window

        from spectralgpt.io.raster import grid_of, read_multiband

        size = self.predictor.size
        grid = grid_of(path)
        if grid.height < size or grid.width < size:
            centre_crop(np.empty((0, grid.height, grid.width)), size, path)  # raises the usual message
        window = Window((grid.width - size) // 2, (grid.height - size) // 2, size, size)
        return read_multiband(path, self.predictor.bands, band_order=band_order, window=window).array

    def _read_all(self, paths, band_order, policy: ServePolicy) -> np.ndarray:
        from spectralgpt.data.sample import BadSample

        arrays = []
        for value in paths:
            path = policy.check_path(value)
            try:
                arrays.append(self._read(path, band_order))
            except BadSample as e:
                raise RequestError(_client_message(value, e)) from None
        return np.stack(arrays)

    def _from_paths(self, df: pd.DataFrame, band_order, batch_size: int, policy: ServePolicy) -> np.ndarray:
        change = self.predictor.task.dates == 2
        if change and "path2" not in df.columns:
            raise RequestError("a change-detection model needs a `path2` column (the second date) beside `path`")
        size = self.predictor.size
        policy.check_size(len(df), size, size, "table of paths")
        for col in ("path", "path2") if change else ("path",):  # every path is checked before any is opened
            for value in df[col]:
                policy.check_path(value)
        out = []
        for i in range(0, len(df), batch_size):
            rows = df.iloc[i:i + batch_size]
            x = self._read_all(rows["path"], band_order, policy)
            x2 = self._read_all(rows["path2"], band_order, policy) if change else None
            out.append(self.predictor.predict(x, x2))
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def _table(self, df: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
        names = self.class_names
        table = pd.DataFrame({"path": df["path"].astype(str).tolist()})
        if "path2" in df.columns:
            table["path2"] = df["path2"].astype(str).tolist()
        dense = probs.ndim == 4
        for k, name in enumerate(names):
            table[name] = [p[k].tolist() for p in probs] if dense else probs[:, k]
        decisions = self.predictor.decide(probs)  # the task's decision with the model's saved thresholds
        table["predicted"] = [d.tolist() for d in decisions] if dense else self.predictor.task.labels(decisions, names)
        return table

    # ------------------------------------------------------------------------------------- predict

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        """Client mistakes become MlflowException(INVALID_PARAMETER_VALUE) -> HTTP 400 with our message; anything
        else is logged here and answered with a generic message (HTTP 500), so no internals reach the client."""
        try:
            return self._predict(model_input, params or {})
        except MlflowException:
            raise
        except ValueError as e:  # RequestError, BadSample, SceneError, shape checks in Predictor
            raise MlflowException(str(e), error_code=INVALID_PARAMETER_VALUE) from None
        except Exception:
            log.exception("prediction failed")
            raise MlflowException("internal error while predicting; the server log has the details",
                                  error_code=INTERNAL_ERROR) from None

    def _predict(self, model_input, params: dict):
        policy = ServePolicy.from_env()
        bands = _band_list(params.get("bands"))
        batch_size = _batch_size(params, policy)
        p = self.predictor
        if isinstance(model_input, pd.DataFrame):
            if "path" not in model_input.columns:
                raise RequestError("a DataFrame input needs a `path` column of GeoTIFF files (and `path2` for "
                                   f"change detection); got columns {[str(c) for c in model_input.columns][:20]}")
            return self._table(model_input, self._from_paths(model_input, bands, batch_size, policy))
        if isinstance(model_input, dict):
            if "image" not in model_input:
                raise RequestError(f"a dict input needs an `image` entry; got keys {sorted(map(str, model_input))[:20]}")
            bands = _band_list(model_input.get("bands"), model_input.get("sensor")) or bands
            x = self._array(model_input["image"], "image", bands, policy)
            x2 = model_input.get("image2")
            x2 = None if x2 is None else self._array(x2, "image2", bands, policy)
        else:
            x, x2 = self._array(model_input, "input", bands, policy), None
        if p.task.dates == 2 and x2 is None:
            raise RequestError("a change-detection model needs two dates: pass {'image': ..., 'image2': ...}")
        if x2 is not None and x2.shape != x.shape:
            raise RequestError(f"image2 has shape {x2.shape}, image has {x.shape}: the two dates must match")
        if bands is not None and list(bands) == list(p.bands):
            bands = None
        n = x.shape[0] if x.ndim == 4 else 1
        out = [p.predict(x[i:i + batch_size] if x.ndim == 4 else x,
                         None if x2 is None else (x2[i:i + batch_size] if x2.ndim == 4 else x2), bands)
               for i in range(0, n, batch_size)]
        return np.concatenate(out).astype(np.float32)


# ------------------------------------------------------------------------------------------ logging


def recipe_of(model_dir: str | os.PathLike) -> dict:
    """The preprocessing recipe stored with a model folder, as logged beside the pyfunc model."""
    from spectralgpt.models.config import ModelConfig
    from spectralgpt.tasks import task_of_model

    from spectralgpt.bands import BandMapping

    meta = read_config(model_dir)
    arch, extra = meta["model"], meta.get("extra") or {}
    task = task_of_model(ModelConfig(**arch), extra)
    mapping = (meta.get("normalization") or {}).get("band_mapping")
    bands = BandMapping.from_dict(mapping).input_bands if mapping else meta.get("bands") or arch.get("bands")
    return {"bands": list(bands), "model_bands": meta.get("bands") or arch.get("bands"), "band_mapping": mapping,
            "normalization": meta.get("normalization"),
            "img_size": arch.get("img_size"), "kind": arch.get("kind"), "multilabel": arch.get("multilabel", False),
            "task": task.name, "class_names": extra.get("class_names") or task.class_names, "dense": task.dense,
            "thresholds": extra.get("thresholds"),
            "inputs": "raw reflectance: array (B, C, H, W); dict {image, image2, bands}; DataFrame {path, path2} "
                      f"of GeoTIFFs inside the server's {ROOTS_ENV}; larger images are centre-cropped to img_size",
            "outputs": task.outputs}


def signature_of(recipe: dict, num_outputs: int) -> ModelSignature:
    """Outputs (-1, K) or (-1, K, S, S) float32 with a free batch axis; params ``bands`` and ``batch_size``.

    There is no input schema on purpose: one MLflow schema cannot express the three accepted input forms
    (array, dict with band names, table of file paths), and an input schema would make MLflow refuse two of
    them before `predict` sees them. The accepted inputs are recorded in the ``preprocessing`` artifact and
    the model metadata; `predict` validates them with messages that name the problem.
    """
    s = int(recipe["img_size"])
    dense = recipe["dense"]
    out_shape = (-1, num_outputs, s, s) if dense else (-1, num_outputs)
    params = ParamSchema([ParamSpec("bands", "string", list(recipe["bands"]), (-1,)),
                          ParamSpec("batch_size", "long", 16)])
    return ModelSignature(inputs=None, outputs=Schema([TensorSpec(np.dtype(np.float32), out_shape)]), params=params)


def pip_requirements() -> list[str]:
    reqs = [f"mlflow=={mlflow.__version__}"]
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            reqs.append(f"{dist}=={importlib.metadata.version(dist).split('+')[0]}")
        except importlib.metadata.PackageNotFoundError:
            reqs.append(dist)
    return reqs


def log_pyfunc(model_dir: str | os.PathLike, run_id: str | None = None, name: str = "model",
               tags: dict | None = None):
    """Log `model_dir` (a `save_model` folder) as a pyfunc model in run `run_id` (default: the active run).

    Returns MLflow's `ModelInfo` (``model_uri`` is what `register` puts in the registry).
    """
    model_dir = Path(model_dir)
    recipe = recipe_of(model_dir)
    from spectralgpt.models.config import ModelConfig

    cfg = ModelConfig(**read_config(model_dir)["model"])
    k = int(cfg.num_classes)
    if run_id is None and (active := mlflow.active_run()) is not None:
        run_id = active.info.run_id
    # the logged model belongs to its run's experiment (Model.log alone would file it under the active one)
    experiment_id = mlflow.MlflowClient().get_run(run_id).info.experiment_id if run_id else None
    logged = mlflow.initialize_logged_model(name=name, source_run_id=run_id, experiment_id=experiment_id,
                                            tags={k2: str(v) for k2, v in (tags or {}).items()} or None)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # the signature is explicit; an input example would store a full image as JSON in every version
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        recipe_path = Path(tmp) / "preprocessing.json"
        recipe_path.write_text(json.dumps(recipe, indent=2))
        return Model.log(
            artifact_path=None, name=name, flavor=mlflow.pyfunc, run_id=run_id, model_id=logged.model_id,
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),  # models from code: no pickle
            artifacts={MODEL_ARTIFACT: str(model_dir), RECIPE_ARTIFACT: str(recipe_path)},
            code_paths=[str(Path(spectralgpt.__file__).parent)],
            signature=signature_of(recipe, k),
            pip_requirements=pip_requirements(),
            metadata={"spectralgpt": {k2: v for k2, v in recipe.items() if k2 not in ("inputs", "outputs")}},
        )
