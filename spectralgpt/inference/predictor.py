"""A saved model plus the preprocessing it was trained with: bands selected by name, the normalisation
recipe recorded in its config.json, and its task's outputs: probabilities, and the decisions (`decide`) with
the settings saved with the model (multi-label thresholds chosen on the validation split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spectralgpt.bands import canonical_list, select_bands
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
        self.bands = tuple(meta.get("bands") or self.cfg.bands)
        norm = meta.get("normalization")
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

    def prepare(self, raw: np.ndarray | torch.Tensor, bands=None) -> torch.Tensor:
        """Raw reflectance (B, C, H, W) or (C, H, W) with band names `bands` (default: the model's order) ->
        the normalised float tensor the model was trained on."""
        x = raw if isinstance(raw, np.ndarray) else raw.cpu().numpy()
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4:
            raise ValueError(f"expected (B, C, H, W) or (C, H, W) reflectance, got shape {x.shape}")
        if bands is not None:
            x = np.stack([select_bands(img, canonical_list(bands), self.bands) for img in x])
        elif x.shape[1] != len(self.bands):
            raise ValueError(f"model needs {len(self.bands)} bands ({', '.join(self.bands)}), input has {x.shape[1]}; "
                             "pass the input's band names to select them")
        if x.dtype.kind not in "uif" or x.dtype.itemsize > 4 or not x.dtype.isnative:
            x = x.astype(np.float32)
        # the stored integers travel to the device (half the bytes of float32); the float work happens there
        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, non_blocking=True).float()
        if x.dtype.kind == "f" and not torch.isfinite(t).all():  # integers cannot be NaN
            raise ValueError("input contains NaN or infinite values")
        return self.recipe(t)

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

    def predict(self, raw, raw2=None, bands=None) -> np.ndarray:
        """Raw reflectance in, probabilities out (numpy)."""
        x = self.prepare(raw, bands)
        x2 = None if raw2 is None else self.prepare(raw2, bands)
        return self.forward(x, x2).cpu().numpy()
