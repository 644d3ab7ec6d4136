"""Normalisation recipes and one-pass, mergeable per-band statistics.

Recipes (each applies to numpy arrays and torch tensors with the band axis at ``-3``, i.e. (C, H, W) or
(B, C, H, W); each serialises to a JSON dict with its statistics, so a saved model carries exactly the
preprocessing it was trained with):

``minmax``      per image and per band: (x - min) / (max - min + eps) -> [0, 1] (pretraining; no statistics).
``zscore``      (x - mean) / std with dataset statistics per band (the EuroSAT fine-tuning recipe).
``clip2sigma``  clip((x - (mean - 2 std)) / (4 std), 0, 1) (the BigEarthNet fine-tuning recipe;
                ``quantize=True`` reproduces the original's round trip through uint8).

:class:`BandStats` accumulates count, mean, M2 (Chan et al. parallel update), min and max per band and an
optional fixed-bin histogram for percentiles, in one pass with bounded memory; ``merge`` of the partial
statistics of several shards or processes gives the result of one pass over the concatenation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

try:  # torch is a hard dependency of the project, but keep this module importable without it
    import torch
except ImportError:  # pragma: no cover
    torch = None

#: BigEarthNet statistics used by the official fine-tuning (12 bands, PRETRAIN_BANDS order).
BIGEARTHNET_MEAN = (1370.19151926, 1184.3824625, 1120.77120066, 1136.26026392, 1263.73947144, 1645.40315151,
                    1846.87040806, 1762.59530783, 1972.62420416, 582.72633433, 1732.16362238, 1247.91870117)
BIGEARTHNET_STD = (633.15169573, 650.2842772, 712.12507725, 965.23119807, 948.9819932, 1108.06650639,
                   1258.36394548, 1233.1492281, 1364.38688993, 472.37967789, 1310.36996126, 1087.6020813)


def _is_torch(x) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def _float(x):
    if _is_torch(x):
        return x if x.is_floating_point() else x.float()
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def _per_band(v, x):
    """Broadcast a per-band vector against x (..., C, H, W)."""
    if _is_torch(x):
        return torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    return np.asarray(v, dtype=x.dtype).reshape(-1, 1, 1)


class Recipe:
    """Base class of normalisation recipes."""

    name = ""

    def __call__(self, x):
        return self.apply(x)

    def apply(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def from_dict(d: dict) -> "Recipe":
        name = d.get("name")
        if name not in RECIPES:
            raise ValueError(f"unknown normalisation recipe {name!r}; expected one of {', '.join(RECIPES)}")
        return RECIPES[name]._from_dict(d)

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"{type(self).__name__}({self.to_dict()})"


class MinMax(Recipe):
    """Per-image, per-band min-max scaling to [0, 1]."""

    name = "minmax"

    def __init__(self, eps: float = 1e-10):
        self.eps = float(eps)

    def apply(self, x):
        x = _float(x)
        if _is_torch(x):
            lo = x.amin(dim=(-2, -1), keepdim=True)
            hi = x.amax(dim=(-2, -1), keepdim=True)
        else:
            lo = x.min(axis=(-2, -1), keepdims=True)
            hi = x.max(axis=(-2, -1), keepdims=True)
        return (x - lo) / (hi - lo + self.eps)

    def to_dict(self):
        return {"name": self.name, "eps": self.eps}

    @classmethod
    def _from_dict(cls, d):
        return cls(eps=d.get("eps", 1e-10))


class _Stat(Recipe):
    def __init__(self, mean, std, bands=None):
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"mean and std need the same non-zero length, got {len(self.mean)} and {len(self.std)}")
        if any(s <= 0 or not math.isfinite(s) for s in self.std):
            raise ValueError(f"std must be positive and finite per band, got {self.std}")
        self.bands = tuple(bands) if bands is not None else None
        if self.bands is not None and len(self.bands) != len(self.mean):
            raise ValueError(f"{len(self.bands)} band names for {len(self.mean)} statistics")

    def _check(self, x):
        if x.shape[-3] != len(self.mean):
            raise ValueError(f"{self.name}: image has {x.shape[-3]} bands, the statistics {len(self.mean)}")

    @classmethod
    def from_stats(cls, stats: "BandStats", bands=None, **kw):
        return cls(stats.mean, stats.std, bands=bands if bands is not None else stats.bands, **kw)

    def to_dict(self):
        return {"name": self.name, "mean": list(self.mean), "std": list(self.std),
                "bands": list(self.bands) if self.bands is not None else None}

    @classmethod
    def _from_dict(cls, d):
        return cls(d["mean"], d["std"], bands=d.get("bands"))


class ZScore(_Stat):
    """(x - mean) / std per band."""

    name = "zscore"

    def apply(self, x):
        x = _float(x)
        self._check(x)
        return (x - _per_band(self.mean, x)) / _per_band(self.std, x)


class Clip2Sigma(_Stat):
    """clip((x - (mean - 2 std)) / (4 std), 0, 1); quantize=True rounds through uint8 like the original."""

    name = "clip2sigma"

    def __init__(self, mean, std, bands=None, quantize: bool = False):
        super().__init__(mean, std, bands)
        self.quantize = bool(quantize)

    def apply(self, x):
        x = _float(x)
        self._check(x)
        lo = _per_band([m - 2 * s for m, s in zip(self.mean, self.std)], x)
        span = _per_band([4 * s for s in self.std], x)
        y = (x - lo) / span
        if self.quantize:  # the original: clip(y * 255, 0, 255).astype(uint8) then / 255
            y = (y * 255).clamp(0, 255).floor() / 255 if _is_torch(y) else np.floor(np.clip(y * 255, 0, 255)) / 255
            return y
        return y.clamp(0, 1) if _is_torch(y) else np.clip(y, 0, 1)

    def to_dict(self):
        return {**super().to_dict(), "quantize": self.quantize}

    @classmethod
    def _from_dict(cls, d):
        return cls(d["mean"], d["std"], bands=d.get("bands"), quantize=d.get("quantize", False))

    @classmethod
    def bigearthnet_official(cls, quantize: bool = False):
        from spectralgpt.bands import PRETRAIN_BANDS

        return cls(BIGEARTHNET_MEAN, BIGEARTHNET_STD, bands=PRETRAIN_BANDS, quantize=quantize)


RECIPES: dict[str, type[Recipe]] = {"minmax": MinMax, "zscore": ZScore, "clip2sigma": Clip2Sigma}


def make_recipe(name: str, stats: "BandStats | dict | None" = None, bands=None, **kw) -> Recipe:
    """Build a recipe by name; ``zscore`` / ``clip2sigma`` take their mean/std from `stats`."""
    if name not in RECIPES:
        raise ValueError(f"unknown normalisation recipe {name!r}; expected one of {', '.join(RECIPES)}")
    if name == "minmax":
        return MinMax(**kw)
    if stats is None:
        raise ValueError(f"recipe {name!r} needs per-band statistics (stats=BandStats or its dict)")
    if isinstance(stats, dict):
        stats = BandStats.from_dict(stats)
    return RECIPES[name].from_stats(stats, bands=bands, **kw)


# ------------------------------------------------------------------------------------------------------
# Streaming statistics
# ------------------------------------------------------------------------------------------------------
@dataclass
class BandStats:
    """Mergeable one-pass per-band statistics.

    ``update(x)`` takes an array whose axis ``band_axis`` (default -3, i.e. (C,H,W) or (B,C,H,W)) is the
    band axis; pixels equal to ``ignore_value`` (e.g. a nodata value) or where ``mask`` is False are left
    out. With ``hist_range=(lo, hi)`` and ``bins`` a fixed-bin histogram per band is kept (values outside
    the range fall into the edge bins) for approximate percentiles.
    """

    n_bands: int
    bands: tuple | None = None
    hist_range: tuple[float, float] | None = None
    bins: int = 0
    count: np.ndarray = field(default=None)
    mean_: np.ndarray = field(default=None)
    m2: np.ndarray = field(default=None)
    min: np.ndarray = field(default=None)
    max: np.ndarray = field(default=None)
    hist: np.ndarray | None = field(default=None)

    def __post_init__(self):
        c = self.n_bands
        if self.bands is not None:
            self.bands = tuple(self.bands)
            if len(self.bands) != c:
                raise ValueError(f"{len(self.bands)} band names for n_bands={c}")
        if self.count is None:
            self.count = np.zeros(c, np.int64)
            self.mean_ = np.zeros(c, np.float64)
            self.m2 = np.zeros(c, np.float64)
            self.min = np.full(c, np.inf)
            self.max = np.full(c, -np.inf)
        if self.hist_range is not None:
            self.hist_range = (float(self.hist_range[0]), float(self.hist_range[1]))
            if not self.bins or self.hist_range[1] <= self.hist_range[0]:
                raise ValueError(f"histogram needs bins > 0 and hi > lo, got {self.bins}, {self.hist_range}")
            if self.hist is None:
                self.hist = np.zeros((c, self.bins), np.int64)

    @classmethod
    def for_dtype(cls, n_bands, dtype, bands=None, histogram=True):
        """Sensible histogram defaults: reflectance x 10000 in [0, 16384) with 8-DN bins for (u)int16."""
        if histogram and np.dtype(dtype).kind in "iu":
            return cls(n_bands, bands, hist_range=(0.0, 16384.0), bins=2048)
        return cls(n_bands, bands)

    # -- accumulation ------------------------------------------------------------------------------
    def update(self, x, mask=None, ignore_value=None, band_axis: int = -3):
        x = np.asarray(x)
        x = np.moveaxis(x, band_axis, 0).reshape(x.shape[band_axis], -1)
        if x.shape[0] != self.n_bands:
            raise ValueError(f"array has {x.shape[0]} bands, the accumulator {self.n_bands}")
        valid = None
        if mask is not None:
            m = np.asarray(mask, bool)
            valid = np.broadcast_to(m.reshape(-1) if m.size == x.shape[1] else m, x.shape)
        if ignore_value is not None:
            iv = x != ignore_value
            valid = iv if valid is None else valid & iv
        for c in range(self.n_bands):
            v = x[c] if valid is None else x[c][valid[c]]
            if v.size:
                self._update_band(c, v)
        return self

    def _update_band(self, c, v):
        v64 = v.astype(np.float64, copy=False)
        n_b = v64.size
        mean_b = float(v64.mean())
        m2_b = float(np.square(v64 - mean_b).sum())
        self._merge_band(c, n_b, mean_b, m2_b, float(v.min()), float(v.max()))
        if self.hist is not None:
            lo, hi = self.hist_range
            idx = ((v64 - lo) * (self.bins / (hi - lo))).astype(np.int64)
            np.clip(idx, 0, self.bins - 1, out=idx)
            self.hist[c] += np.bincount(idx, minlength=self.bins)

    def _merge_band(self, c, n_b, mean_b, m2_b, mn, mx):
        n_a = int(self.count[c])
        n = n_a + n_b
        if n == 0:
            return
        delta = mean_b - self.mean_[c]
        self.mean_[c] += delta * n_b / n
        self.m2[c] += m2_b + delta * delta * n_a * n_b / n
        self.count[c] = n
        self.min[c] = min(self.min[c], mn)
        self.max[c] = max(self.max[c], mx)

    def merge(self, other: "BandStats") -> "BandStats":
        """Fold another accumulator into this one (Chan et al.), in place; returns self."""
        if other.n_bands != self.n_bands:
            raise ValueError(f"cannot merge statistics of {other.n_bands} and {self.n_bands} bands")
        if (self.hist is None) != (other.hist is None) or (
                self.hist is not None and (self.hist_range != other.hist_range or self.bins != other.bins)):
            raise ValueError("cannot merge statistics with different histogram settings")
        for c in range(self.n_bands):
            if other.count[c]:
                self._merge_band(c, int(other.count[c]), float(other.mean_[c]), float(other.m2[c]),
                                 float(other.min[c]), float(other.max[c]))
        if self.hist is not None:
            self.hist += other.hist
        return self

    @classmethod
    def merged(cls, parts) -> "BandStats":
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to merge")
        out = BandStats.from_dict(parts[0].to_dict())
        for p in parts[1:]:
            out.merge(p)
        return out

    # -- results ---------------------------------------------------------------------------------
    @property
    def mean(self) -> np.ndarray:
        return np.where(self.count > 0, self.mean_, np.nan)

    @property
    def var(self) -> np.ndarray:
        """Population variance (ddof=0), as numpy's default."""
        return np.where(self.count > 0, self.m2 / np.maximum(self.count, 1), np.nan)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    def percentile(self, q) -> np.ndarray:
        """Approximate per-band percentiles (0-100) from the histogram (linear within a bin)."""
        if self.hist is None:
            raise ValueError("percentiles need a histogram: create BandStats with hist_range and bins")
        q = np.atleast_1d(np.asarray(q, np.float64)) / 100.0
        lo, hi = self.hist_range
        width = (hi - lo) / self.bins
        out = np.full((self.n_bands, q.size), np.nan)
        for c in range(self.n_bands):
            cum = np.cumsum(self.hist[c])
            if cum[-1] == 0:
                continue
            target = q * cum[-1]
            k = np.clip(np.searchsorted(cum, target, side="left"), 0, self.bins - 1)
            prev = np.where(k > 0, cum[np.maximum(k - 1, 0)], 0)
            inbin = np.maximum(self.hist[c][k], 1)
            out[c] = lo + (k + np.clip((target - prev) / inbin, 0, 1)) * width
            out[c] = np.clip(out[c], self.min[c], self.max[c])
        return out if out.shape[1] > 1 else out[:, 0]

    # -- (de)serialisation -------------------------------------------------------------------------
    def to_dict(self, histogram: bool = True) -> dict:
        d = {
            "n_bands": self.n_bands,
            "bands": list(self.bands) if self.bands is not None else None,
            "count": self.count.tolist(),
            "mean": [float(v) for v in self.mean_],
            "m2": [float(v) for v in self.m2],
            "std": [float(v) if np.isfinite(v) else None for v in self.std],
            "min": [float(v) if np.isfinite(v) else None for v in self.min],
            "max": [float(v) if np.isfinite(v) else None for v in self.max],
        }
        if self.hist is not None and histogram:
            d["hist_range"] = list(self.hist_range)
            d["bins"] = self.bins
            d["hist"] = self.hist.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BandStats":
        def arr(key, fill):
            return np.array([fill if v is None else v for v in d[key]], np.float64)

        hist = np.array(d["hist"], np.int64) if "hist" in d else None
        return cls(
            n_bands=int(d["n_bands"]), bands=d.get("bands"),
            hist_range=tuple(d["hist_range"]) if hist is not None else None,
            bins=int(d.get("bins", 0)) if hist is not None else 0,
            count=np.array(d["count"], np.int64), mean_=arr("mean", 0.0), m2=arr("m2", 0.0),
            min=arr("min", np.inf), max=arr("max", -np.inf), hist=hist,
        )

    def summary(self) -> dict:
        """Compact JSON-friendly summary (no histogram), with 1/99 percentiles when available."""
        d = self.to_dict(histogram=False)
        if self.hist is not None:
            p = self.percentile([1, 99])
            d["p1"], d["p99"] = p[:, 0].tolist(), p[:, 1].tolist()
        return d
