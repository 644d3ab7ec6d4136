"""The MLflow pyfunc model: our own model folder (model.safetensors + config.json) behind `Predictor`.

We log a pyfunc, not an `mlflow.pytorch` model: MLflow 3 saves PyTorch models through torch.export, which
freezes the input shapes of the example (a batch of one), and the preprocessing recipe would not travel with
it. Here the artifact is exactly the folder `save_model` wrote, so a registered model preprocesses raw
reflectance exactly as training did, and `code_paths` ships the `spectralgpt` package so it loads anywhere.

Inputs accepted by `predict` (all raw reflectance, any numeric dtype):

* a numpy array (B, C, H, W) or (C, H, W) in the model's band order (or in the order named by the ``bands``
  param), for change detection a dict is needed for the second date;
* a dict ``{"image": array, "image2": array (change detection), "bands": [names of the input's bands]}``;
* a pandas DataFrame with a ``path`` column (and ``path2`` for change detection) of GeoTIFF files: bands are
  selected by name (the file's band descriptions, else the ``bands`` param as the file's order).

Images larger than the model's size are centre-cropped; smaller ones are refused. Output: probabilities
(B, K) for classifiers or (B, K, H, W) for dense tasks; for a DataFrame input, a DataFrame with one column
per class and ``predicted`` (for dense tasks each cell holds an H x W map).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model, ModelSignature
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


def _device() -> str:
    return os.environ.get(DEVICE_ENV, "auto")


def centre_crop(x: np.ndarray, size: int, what: str = "image") -> np.ndarray:
    """Centre-crop the last two axes to `size`; refuse images smaller than `size`."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"{what} is {h}x{w} pixels, smaller than the model's {size}x{size}; "
                         f"pass images of at least {size}x{size} (larger ones are centre-cropped)")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def _band_list(bands) -> list[str] | None:
    if bands is None:
        return None
    if isinstance(bands, str):
        bands = json.loads(bands) if bands.strip().startswith("[") else bands.split(",")
    return [str(b).strip() for b in np.asarray(bands).ravel().tolist()]


def class_names_of(predictor) -> list[str]:
    k = predictor.cfg.num_classes if hasattr(predictor.cfg, "num_classes") else None
    names = predictor.class_names
    if predictor.cfg.kind == "change" and not names:
        names = ["no_change", "change"]
    if not names:
        names = [f"class_{i}" for i in range(int(k or 0))]
    return [str(n) for n in names]


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

    def _array(self, x, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype == object:
            x = x.astype(np.float32)
        if x.ndim not in (3, 4):
            raise ValueError(f"{what}: expected raw reflectance (B, C, H, W) or (C, H, W), got shape {x.shape}")
        return centre_crop(x, self.predictor.size, what)

    def _read(self, path: str, band_order) -> np.ndarray:
        from spectralgpt.io.raster import read_multiband

        raster = read_multiband(path, self.predictor.bands, band_order=band_order)
        return centre_crop(raster.array, self.predictor.size, path)

    def _from_paths(self, df: pd.DataFrame, band_order, batch_size: int) -> np.ndarray:
        change = self.predictor.cfg.kind == "change"
        if change and "path2" not in df.columns:
            raise ValueError("a change-detection model needs a `path2` column (the second date) beside `path`")
        out = []
        for i in range(0, len(df), batch_size):
            rows = df.iloc[i:i + batch_size]
            x = np.stack([self._read(str(p), band_order) for p in rows["path"]])
            x2 = np.stack([self._read(str(p), band_order) for p in rows["path2"]]) if change else None
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
        if dense:
            table["predicted"] = [p.argmax(0).tolist() for p in probs]
        elif self.predictor.cfg.multilabel:
            table["predicted"] = [";".join(n for n, v in zip(names, p) if v >= 0.5) for p in probs]
        else:
            table["predicted"] = [names[int(i)] for i in probs.argmax(1)]
        return table

    # ------------------------------------------------------------------------------------- predict

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        params = params or {}
        bands = _band_list(params.get("bands"))
        batch_size = int(params.get("batch_size") or 16)
        p = self.predictor
        if isinstance(model_input, pd.DataFrame):
            if "path" not in model_input.columns:
                raise ValueError("a DataFrame input needs a `path` column of GeoTIFF files (and `path2` for change "
                                 f"detection); got columns {list(model_input.columns)}")
            return self._table(model_input, self._from_paths(model_input, bands, batch_size))
        if isinstance(model_input, dict):
            if "image" not in model_input:
                raise ValueError(f"a dict input needs an `image` entry; got keys {sorted(model_input)}")
            bands = _band_list(model_input.get("bands")) or bands
            x = self._array(model_input["image"], "image")
            x2 = model_input.get("image2")
            x2 = None if x2 is None else self._array(x2, "image2")
        else:
            x, x2 = self._array(model_input, "input"), None
        if p.cfg.kind == "change" and x2 is None:
            raise ValueError("a change-detection model needs two dates: pass {'image': ..., 'image2': ...}")
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
    meta = read_config(model_dir)
    arch, extra = meta["model"], meta.get("extra") or {}
    return {"bands": meta.get("bands") or arch.get("bands"), "normalization": meta.get("normalization"),
            "img_size": arch.get("img_size"), "kind": arch.get("kind"), "multilabel": arch.get("multilabel", False),
            "task": extra.get("task"), "class_names": extra.get("class_names"),
            "inputs": "raw reflectance: array (B, C, H, W); dict {image, image2, bands}; DataFrame {path, path2} "
                      "of GeoTIFFs; larger images are centre-cropped to img_size",
            "outputs": "probabilities (B, K) for classifiers, (B, K, H, W) for dense tasks"}


def signature_of(recipe: dict, num_outputs: int) -> ModelSignature:
    """Outputs (-1, K) or (-1, K, S, S) float32 with a free batch axis; params ``bands`` and ``batch_size``.

    There is no input schema on purpose: one MLflow schema cannot express the three accepted input forms
    (array, dict with band names, table of file paths), and an input schema would make MLflow refuse two of
    them before `predict` sees them. The accepted inputs are recorded in the ``preprocessing`` artifact and
    the model metadata; `predict` validates them with messages that name the problem.
    """
    s = int(recipe["img_size"])
    dense = recipe["kind"] in ("segmentation", "change")
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
