"""A saved model plus the preprocessing it was trained with: bands selected by name, the normalisation
recipe recorded in its config.json, the band mapping of a model fine-tuned on other bands (its
``normalization.band_mapping``: input bands such as HLS's six onto the model's twelve), and its task's outputs:
probabilities, and the decisions (`decide`) with the settings saved with the model (multi-label thresholds
chosen on the validation split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spectralgpt.bands import BandMapping, MissingBandsError, canonical_list
from spectralgpt.data.normalize import MinMax, Recipe
from spectralgpt.device import resolve_device
from spectralgpt.models import load_model
from spectralgpt.tasks import task_of_model


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """'fp32' -> None (exact); 'bf16' -> bf16 autocast; 'auto' -> bf16 where the hardware runs it natively
    (CUDA GPUs with bf16, CPUs with AVX-512 BF16 / AMX through oneDNN), else fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be fp32, bf16 or auto, got {precision!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


class Predictor:
    """`precision` 'fp32' (default: exact), 'bf16' or 'auto' (bf16 autocast where the hardware has it; class
    maps agree with fp32 on all but a few boundary pixels, see benchmarks/predict_throughput.py)."""

    def __init__(self, model, meta: dict, device: str | torch.device = "cpu", precision: str = "fp32"):
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.meta = meta
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.cfg = model.cfg
        norm = dict(meta.get("normalization") or {})
        mapping = norm.pop("band_mapping", None)
        #: the conversion of raw pixels the model's reader applied (None: raw pixels are the stored values)
        self.raw_input: dict | None = norm.pop("input", None)
        if self.raw_input is not None:
            from spectralgpt.data.sources.hls_burn_scars import apply_raw_input

            apply_raw_input(np.zeros((1, 1, 1), np.float32), self.raw_input)  # a malformed record fails here
        #: input bands -> the model's bands (None: the input is the model's bands, in its order)
        self.mapping: BandMapping | None = None if mapping is None else BandMapping.from_dict(mapping)
        if self.mapping is not None and self.mapping.model_bands != tuple(self.cfg.bands):
            raise ValueError(f"the band mapping feeds bands {', '.join(self.mapping.model_bands)}, but the model "
                             f"takes {', '.join(self.cfg.bands)}")
        #: the bands an input must hold (by name): the mapping's input bands, else the model's
        self.bands = self.mapping.input_bands if self.mapping else tuple(meta.get("bands") or self.cfg.bands)
        self.recipe: Recipe = Recipe.from_dict(norm) if norm else MinMax()
        self.extra = meta.get("extra") or {}
        self.task = task_of_model(self.cfg, self.extra)
        self.class_names = self.extra.get("class_names") or self.task.class_names

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu", precision: str = "fp32") -> "Predictor":
        model, meta = load_model(directory)
        return cls(model, meta, device, precision)

    @property
    def size(self) -> int:
        return self.cfg.img_size

    def _input_bands(self) -> str:
        text = ", ".join(self.bands)
        if self.mapping is not None:
            text += f" (mapped onto its {len(self.mapping.model_bands)} bands as recorded with it)"
        return text

    def select(self, x: np.ndarray, bands, sensor: str | None = None) -> np.ndarray:
        """The model's input bands of (B, C, H, W) `x` whose bands are named `bands`, selected by name; a
        ValueError naming what is missing."""
        given = canonical_list(bands, sensor)
        if len(given) != x.shape[1]:
            raise ValueError(f"input has {x.shape[1]} bands but {len(given)} band names were given")
        missing = [b for b in self.bands if b not in given]
        if missing:
            raise MissingBandsError(f"the model takes bands {self._input_bands()}; the input lacks "
                                    f"{', '.join(missing)} (it has {', '.join(given)})")
        return x[:, [given.index(b) for b in self.bands]]

    def prepare(self, raw: np.ndarray | torch.Tensor, bands=None, sensor: str | None = None) -> torch.Tensor:
        """Raw reflectance (B, C, H, W) or (C, H, W) with band names `bands` (default: the model's input bands,
        `self.bands`, in that order; `sensor` for plain names of another sensor) -> the normalised float tensor,
        on the model's bands, that the model was trained on: the recipe per input band, then the band mapping."""
        x = raw if isinstance(raw, np.ndarray) else raw.cpu().numpy()
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4:
            raise ValueError(f"expected (B, C, H, W) or (C, H, W) reflectance, got shape {x.shape}")
        if bands is not None:
            x = self.select(x, bands, sensor)
        elif x.shape[1] != len(self.bands):
            raise ValueError(f"model needs {len(self.bands)} bands ({self._input_bands()}), input has {x.shape[1]}; "
                             "pass the input's band names to select them")
        if self.raw_input is not None:  # as the reader converted the training corpus (non-finite -> nodata)
            from spectralgpt.data.sources.hls_burn_scars import apply_raw_input

            x = apply_raw_input(x, self.raw_input)
        if x.dtype.kind not in "uif" or x.dtype.itemsize > 4 or not x.dtype.isnative:
            x = x.astype(np.float32)
        # the stored integers travel to the device (half the bytes of float32); the float work happens there
        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, non_blocking=True).float()
        if x.dtype.kind == "f" and not torch.isfinite(t).all():  # integers cannot be NaN
            raise ValueError("input contains NaN or infinite values")
        t = self.recipe(t)
        return t if self.mapping is None else self.mapping(t)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised input -> probabilities: (B, K) for classifiers, (B, K, H, W) for dense models."""
        with self._autocast():
            logits = self._logits(x, x2)
        return self.task.probabilities(logits)

    def _logits(self, x: torch.Tensor, x2: torch.Tensor | None) -> torch.Tensor:
        if not self.task.predicts:
            raise ValueError("an MAE pretraining model has no prediction head; use embed()")
        if self.task.dates == 2 and x2 is None:
            raise ValueError("a change-detection model needs two dates")
        return self.task.forward(self.model, {"image": x, "image2": x2})

    def decide(self, probs, dim: int = 1):
        """Probabilities (numpy or torch, class axis `dim`) -> the task's decisions with the model's saved
        settings: class indices, or multi-hot for multi-label models (its thresholds, as evaluation applies)."""
        t = torch.as_tensor(probs)
        out = self.task.decide(t, self.extra, dim=dim)
        return out.numpy() if isinstance(probs, np.ndarray) else out

    @torch.inference_mode()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder embedding per image: mean over all tokens after the final norm, (B, D)."""
        with self._autocast():
            return self.model.encode(x).mean(dim=1).float()

    def predict(self, raw, raw2=None, bands=None, sensor: str | None = None) -> np.ndarray:
        """Raw reflectance in, probabilities out (numpy)."""
        x = self.prepare(raw, bands, sensor)
        x2 = None if raw2 is None else self.prepare(raw2, bands, sensor)
        return self.forward(x, x2).cpu().numpy()
