"""torch Datasets over a shard corpus, one per task, with batched augmentations.

Every dataset accepts an int (one sample: tensors without a batch axis) or a list of indices (a batch:
tensors with a leading batch axis, computed in one go). Use :func:`make_loader` to get a DataLoader that
hands whole index lists to the dataset - the augmentations then run once per batch (one ``grid_sample``
for the random resized crops of the whole batch), which is what makes a 2-core machine feed hundreds of
128 px 12-band images per second. A plain ``DataLoader(ds, batch_size=...)`` also works (through
``__getitems__``).

The image datasets (pretraining, classification) split a batch in two: ``prepare(indices)`` reads the stored
uint16 pixels and draws the crops and flips (cheap: a memory copy), ``finish(batch)`` does the float work
(min-max or the recipe, crop + resize, flip) on whatever device the batch is on. ``batch`` is both in one go;
training on a GPU moves prepared batches there and finishes them on the GPU (``make_loader(defer=True)``,
``TrainConfig.augment_on``), so two CPU cores can feed it thousands of images per second.

Randomness comes from torch's global generator, which DataLoader seeds per worker from the main process
seed (``torch.manual_seed``), so runs are reproducible.

================  =====================================================================================
dataset           output (train=True)
================  =====================================================================================
PretrainDataset   ``image`` float32 (12, S, S): per-image per-band min-max, random resized crop
                  (scale 0.2-1.0, ratio 3/4-4/3) to S, horizontal flip p=0.5. Eval: resize to S/0.875
                  then centre crop S (the original recipe).
ClassificationDataset
                  ``image`` normalised with the dataset recipe (zscore / clip2sigma / minmax), the same
                  crop and flip; ``label`` int64 (single-label) or float32 multi-hot (multi-label).
SegmentationDataset
                  ``image``, ``mask`` int64: random crop to S (no resampling), rot90 k in {0..3},
                  horizontal and vertical flips, identical for image and mask; optional label remap.
ChangeDetectionDataset
                  ``image``, ``image2`` (each date min-max normalised on its own), ``mask`` int64; the same
                  geometry on all three.
================  =====================================================================================
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from spectralgpt.bands import PRETRAIN_BANDS, BandMapping, band_indices
from spectralgpt.data.normalize import MinMax, Recipe, make_recipe
from spectralgpt.data.prefetch import ThreadLoader
from spectralgpt.io.shards import ShardCorpus


# ------------------------------------------------------------------------------------------------------
# Batched geometry
# ------------------------------------------------------------------------------------------------------
def rrc_boxes(b: int, h: int, w: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), attempts: int = 10,
              generator: torch.Generator | None = None):
    """Random-resized-crop boxes (top, left, height, width) as float tensors, torchvision's algorithm
    (area fraction uniform in `scale`, log-uniform aspect ratio, up to `attempts` tries, then the
    largest centred box of a clamped ratio), vectorised over a batch of b images."""
    area = h * w
    s = torch.empty(b, attempts).uniform_(*scale, generator=generator) * area
    logr = torch.empty(b, attempts).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    r = torch.exp(logr)
    cw = torch.round(torch.sqrt(s * r))
    ch = torch.round(torch.sqrt(s / r))
    ok = (cw > 0) & (ch > 0) & (cw <= w) & (ch <= h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((b,), -1))
    idx = first.clamp(min=0)
    bw = cw.gather(1, idx[:, None])[:, 0]
    bh = ch.gather(1, idx[:, None])[:, 0]
    top = torch.floor(torch.rand(b, generator=generator) * (h - bh + 1))
    left = torch.floor(torch.rand(b, generator=generator) * (w - bw + 1))
    # fallback: centre crop with the ratio clamped into range
    in_ratio = w / h
    if in_ratio < ratio[0]:
        fw, fh = w, round(w / ratio[0])
    elif in_ratio > ratio[1]:
        fh, fw = h, round(h * ratio[1])
    else:
        fw, fh = w, h
    fb = first < 0
    bw = torch.where(fb, torch.tensor(float(fw)), bw)
    bh = torch.where(fb, torch.tensor(float(fh)), bh)
    top = torch.where(fb, torch.tensor(float((h - fh) // 2)), top)
    left = torch.where(fb, torch.tensor(float((w - fw) // 2)), left)
    return top, left, bh, bw


def crop_resize(x: torch.Tensor, boxes, size: int, hflip=None, mode: str = "bilinear") -> torch.Tensor:
    """Crop per-sample boxes (top, left, height, width) out of x (B, C, H, W) and resize them to size,
    optionally mirrored left-right, with one grid_sample (align_corners=False, like torch's resize)."""
    b, _, h, w = x.shape
    top, left, bh, bw = (t.to(x.device, x.dtype) for t in boxes)
    sx = bw / w
    sy = bh / h
    if hflip is not None:
        sx = torch.where(hflip.to(x.device), -sx, sx)
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = (2 * left + bw) / w - 1
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = (2 * top + bh) / h - 1
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


def center_boxes(b: int, h: int, w: int, size: int, crop_pct: float = 0.875):
    """The box that Resize(int(size / crop_pct)) + CenterCrop(size) takes out of an h x w image."""
    resized = int(size / crop_pct)
    fh, fw = h * size / resized, w * size / resized
    full = lambda v: torch.full((b,), float(v))  # noqa: E731
    return full((h - fh) / 2), full((w - fw) / 2), full(fh), full(fw)


def random_dihedral(tensors: list[torch.Tensor], crop: int | None = None, rot90: bool = True,
                    hflip: bool = True, vflip: bool = True) -> list[torch.Tensor]:
    """The same random crop (integer offsets, no resampling), rot90, and flips for every tensor of a
    group; tensors are batched (B, ..., H, W), each sample of the batch drawn independently."""
    b, h, w = tensors[0].shape[0], tensors[0].shape[-2], tensors[0].shape[-1]
    crop = crop or min(h, w)
    rows = torch.randint(0, h - crop + 1, (b,))
    cols = torch.randint(0, w - crop + 1, (b,))
    ks = torch.randint(0, 4, (b,)) if rot90 else torch.zeros(b, dtype=torch.long)
    hf = torch.rand(b) < 0.5 if hflip else torch.zeros(b, dtype=torch.bool)
    vf = torch.rand(b) < 0.5 if vflip else torch.zeros(b, dtype=torch.bool)
    out = [[] for _ in tensors]
    for i in range(b):
        r, c, k = int(rows[i]), int(cols[i]), int(ks[i])
        dims = [d for d, on in ((-1, hf[i]), (-2, vf[i])) if on]
        for t, acc in zip(tensors, out):
            y = t[i, ..., r:r + crop, c:c + crop]
            if k:
                y = torch.rot90(y, k, dims=(-2, -1))
            if dims:
                y = torch.flip(y, dims)
            acc.append(y)
    return [torch.stack(a) for a in out]


def center_crop(t: torch.Tensor, size: int) -> torch.Tensor:
    h, w = t.shape[-2:]
    if h == size and w == size:
        return t
    if h < size or w < size:
        raise ValueError(f"cannot centre-crop {h}x{w} to {size}")
    r, c = (h - size) // 2, (w - size) // 2
    return t[..., r:r + size, c:c + size]


# ------------------------------------------------------------------------------------------------------
# Datasets
# ------------------------------------------------------------------------------------------------------
def _resolve_recipe(recipe, corpus: ShardCorpus) -> Recipe | None:
    if recipe is None or isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    if recipe == "auto":
        d = corpus.manifest.get("normalization")
        return Recipe.from_dict(d) if d else MinMax()
    stats = corpus.stats() if recipe != "minmax" else None
    return make_recipe(recipe, stats)


class ShardTaskDataset(Dataset):
    """Common machinery: corpus access, band selection, int-or-batch indexing.

    A recipe dict with a ``band_mapping`` entry (`BandMapping.to_dict`, as `normalization_record` writes and a
    saved model's config.json keeps) reads the mapping's input bands (by name) and maps the normalised images
    onto the model's bands: the same record training, evaluation and inference apply."""

    def __init__(self, corpus, *, size: int | None = None, train: bool = True, recipe="auto", bands=None,
                 split: str | None = None):
        if not isinstance(corpus, ShardCorpus):
            corpus = ShardCorpus(corpus, split=split)
        self.corpus = corpus
        self.size = int(size or corpus.size)
        self.train = train
        self.mapping = None
        if isinstance(recipe, dict) and recipe.get("band_mapping") is not None:
            self.mapping = BandMapping.from_dict(recipe["band_mapping"])
            recipe = {k: v for k, v in recipe.items() if k != "band_mapping"}
            bands = self.mapping.input_bands if bands is None else bands
        self.bands = tuple(bands) if bands is not None else corpus.bands
        if self.mapping is not None and self.bands != self.mapping.input_bands:
            raise ValueError(f"bands {', '.join(self.bands)} differ from the band mapping's input bands "
                             f"{', '.join(self.mapping.input_bands)}")
        idx = band_indices(corpus.bands, self.bands)
        self._band_idx = None if idx == list(range(len(corpus.bands))) else idx
        self.recipe = _resolve_recipe(recipe, corpus)
        if isinstance(self.recipe, MinMax):
            pass
        elif self.recipe is not None and getattr(self.recipe, "bands", None) and self.recipe.bands != self.bands:
            # recipe statistics follow the stored band order; select the requested bands
            sel = band_indices(self.recipe.bands, self.bands)
            d = self.recipe.to_dict()
            d.update(mean=[d["mean"][i] for i in sel], std=[d["std"][i] for i in sel], bands=list(self.bands))
            self.recipe = Recipe.from_dict(d)

    def __len__(self):
        return len(self.corpus)

    def _read(self, indices, name="image", stored: bool = False) -> torch.Tensor:
        """Array `name` of `indices` (images in the requested band order), as float32 images / integer labels;
        ``stored=True`` keeps the stored dtype (uint16: half the bytes of float32 to move to a GPU)."""
        a = self.corpus.get_batch(indices, name)
        if name in ("image", "image2") and self._band_idx is not None:
            a = a[:, self._band_idx]
        if stored:
            return torch.from_numpy(np.ascontiguousarray(a))
        if a.dtype == np.uint16:  # most torch ops do not take uint16: widen first
            a = a.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.float() if name in ("image", "image2") else t

    def _norm(self, x):
        return self._map(x if self.recipe is None else self.recipe(x))

    def _map(self, x):
        """Normalised input bands -> the model's bands (the band mapping; nothing without one)."""
        return x if self.mapping is None else self.mapping(x)

    def normalization_record(self) -> dict | None:
        """What a saved model records as its normalisation: the recipe (statistics per input band) and, with a
        band mapping, the mapping under ``band_mapping``."""
        record = self.recipe.to_dict() if self.recipe is not None else None
        if self.mapping is not None:
            if record is None:
                raise ValueError("a band mapping needs a normalisation recipe to be recorded with")
            record = {**record, "band_mapping": self.mapping.to_dict()}
        return record

    def normalised_mean(self, max_items: int = 256) -> float:
        """Mean of the normalised input bands (before the band mapping) over up to `max_items` items spread evenly
        over the corpus: the ``mean`` fill of a band mapping (a z-score's is 0 by construction)."""
        n = len(self.corpus)
        if n == 0:
            raise ValueError(f"corpus {self.corpus.path} is empty")
        rows = np.unique(np.linspace(0, n - 1, min(n, max_items)).round().astype(int)).tolist()
        total, count = 0.0, 0
        for start in range(0, len(rows), 32):
            x = self._read(rows[start:start + 32])
            y = x if self.recipe is None else self.recipe(x)
            total += float(y.double().sum())
            count += y.numel()
        return total / count

    def batch(self, indices) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)):
            out = self.batch([int(idx)])
            return {k: v[0] for k, v in out.items()}
        if isinstance(idx, slice):
            idx = range(*idx.indices(len(self)))
        return self.batch(list(idx))

    def __getitems__(self, indices):
        out = self.batch(list(indices))
        return [{k: v[i] for k, v in out.items()} for i in range(len(indices))]


class PretrainDataset(ShardTaskDataset):
    """Pretraining images: min-max, random resized crop (scale 0.2-1) and horizontal flip."""

    def __init__(self, corpus, size: int = 128, train: bool = True, *, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3),
                 hflip: bool = True, interpolation: str = "bicubic", bands=PRETRAIN_BANDS, recipe="minmax",
                 split: str | None = None):
        super().__init__(corpus, size=size, train=train, recipe=recipe, bands=bands, split=split)
        self.scale, self.ratio, self.hflip, self.mode = scale, ratio, hflip, interpolation

    def prepare(self, indices, generator: torch.Generator | None = None) -> dict:
        """Read a batch and draw its augmentation (crop boxes, flips; from `generator`, else torch's global
        one): cheap work for the loader. The float math is left to :meth:`finish`, which runs wherever the
        batch is (a GPU, say)."""
        raw = self._read(indices, stored=True)
        b, _, h, w = raw.shape
        if self.train:
            boxes = torch.stack(rrc_boxes(b, h, w, self.scale, self.ratio, generator=generator), 1)
            flip = torch.rand(b, generator=generator) < 0.5 if self.hflip else torch.zeros(b, dtype=torch.bool)
        else:
            boxes, flip = torch.stack(center_boxes(b, h, w, self.size), 1), torch.zeros(b, dtype=torch.bool)
        return {"raw": raw, "boxes": boxes, "flip": flip, "index": torch.as_tensor(indices)}

    def finish(self, batch: dict) -> dict:
        """Normalise, crop, resize and flip a prepared batch on its own device (one grid_sample)."""
        rest = {k: v for k, v in batch.items() if k not in ("raw", "boxes", "flip")}
        x, boxes, flip = batch["raw"], batch["boxes"].unbind(1), batch["flip"]
        if type(self.recipe) is MinMax:
            # min-max is a per-band affine map and interpolation commutes with it: take min/max on the
            # stored image, interpolate raw values, normalise the (equal or smaller) output
            x = x.float()
            lo = x.amin(dim=(2, 3), keepdim=True)
            hi = x.amax(dim=(2, 3), keepdim=True)
            y = crop_resize(x, boxes, self.size, flip, self.mode)
            return {"image": self._map((y - lo) / (hi - lo + self.recipe.eps)), **rest}
        return {"image": crop_resize(self._norm(x.float()), boxes, self.size, flip, self.mode), **rest}

    def batch(self, indices):
        return self.finish(self.prepare(indices))


class ClassificationDataset(PretrainDataset):
    """Single- or multi-label scene classification with the dataset's normalisation recipe."""

    def __init__(self, corpus, size: int = 128, train: bool = True, *, recipe="auto", bands=None, **kw):
        super().__init__(corpus, size=size, train=train, recipe=recipe, bands=bands, **kw)
        kind = self.corpus.manifest.get("label_kind")
        if kind not in ("class", "multilabel"):
            raise ValueError(f"corpus {self.corpus.path} has label_kind={kind!r}; need 'class' or 'multilabel'")
        self.multilabel = kind == "multilabel"

    def prepare(self, indices, generator: torch.Generator | None = None):
        out = super().prepare(indices, generator)
        y = self._read(indices, "label")
        out["label"] = y.float() if self.multilabel else y.long()
        return out


class SegmentationDataset(ShardTaskDataset):
    """Image + mask: random crop, rot90, flips, identical for both; ``label_map`` remaps mask codes
    (e.g. the SegMunich codes 21 -> 1, ...); unmapped codes are kept."""

    mask_key = "mask"

    def __init__(self, corpus, size: int | None = None, train: bool = True, *, recipe="minmax", bands=None,
                 label_map: dict | None = None, rot90: bool = True, hflip: bool = True, vflip: bool = True,
                 split: str | None = None):
        super().__init__(corpus, size=size, train=train, recipe=recipe, bands=bands, split=split)
        if self.corpus.manifest.get("label_kind") != "mask":
            raise ValueError(f"corpus {self.corpus.path} has no masks (label_kind="
                             f"{self.corpus.manifest.get('label_kind')!r})")
        if self.size > self.corpus.size:
            raise ValueError(f"crop size {self.size} is larger than the stored {self.corpus.size} px")
        self.rot90, self.hflip, self.vflip = rot90, hflip, vflip
        self._lut = None
        if label_map:
            lo = min(min(label_map), -1)
            hi = max(max(label_map), 255) + 1
            lut = torch.arange(lo, hi)
            for k, v in label_map.items():
                lut[k - lo] = v
            self._lut, self._lut_lo = lut, lo

    def _mask(self, indices):
        m = self._read(indices, "label").long()
        if self._lut is not None:
            m = self._lut[m - self._lut_lo]
        return m

    def _images(self, indices):
        return [self._norm(self._read(indices))]

    def batch(self, indices):
        imgs = self._images(indices)
        mask = self._mask(indices)
        group = [*imgs, mask]
        if self.train:
            group = random_dihedral(group, self.size, self.rot90, self.hflip, self.vflip)
        else:
            group = [center_crop(t, self.size) for t in group]
        out = {"image": group[0]}
        if len(imgs) == 2:
            out["image2"] = group[1]
        out[self.mask_key] = group[-1]
        out["index"] = torch.as_tensor(indices)
        return out


class ChangeDetectionDataset(SegmentationDataset):
    """Two dates + change mask; each date normalised on its own (per-patch min-max by default)."""

    def __init__(self, corpus, size: int | None = None, train: bool = True, **kw):
        super().__init__(corpus, size=size, train=train, **kw)
        if "image2" not in self.corpus.arrays:
            raise ValueError(f"corpus {self.corpus.path} has no second date")

    def _images(self, indices):
        return [self._norm(self._read(indices)), self._norm(self._read(indices, "image2"))]


class Rows(Dataset):
    """`dataset` restricted to some of its rows (a validation hold-out and the rest): batches are the dataset's
    batches of those rows; everything else (recipe, size, finish) is the dataset's."""

    def __init__(self, dataset, rows):
        self.dataset, self.rows = dataset, [int(r) for r in rows]

    def __len__(self):
        return len(self.rows)

    def __getattr__(self, name):
        if name in ("dataset", "rows"):  # not set yet (unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _of(self, indices):
        return [self.rows[int(i)] for i in indices]

    def batch(self, indices):
        return self.dataset.batch(self._of(indices))

    def prepare(self, indices, generator: torch.Generator | None = None):
        return self.dataset.prepare(self._of(indices), generator)

    def __getitem__(self, idx):
        return self.dataset[self.rows[int(idx)]]


def make_loader(dataset: ShardTaskDataset, batch_size: int, *, shuffle: bool = True, num_workers: int = 0,
                drop_last: bool = False, persistent_workers: bool | None = None, defer: bool = False,
                **kw):
    """A DataLoader that gives the dataset whole index lists, so augmentations run once per batch.

    ``defer=True`` yields :meth:`PretrainDataset.prepare` batches instead (stored integer pixels plus the
    drawn crops and flips), read ahead by `num_workers` threads (at least one) of a :class:`ThreadLoader`;
    move each to the training device and call ``dataset.finish(batch)`` there. ``pin_memory`` is honoured."""
    sampler = BatchSampler(RandomSampler(dataset) if shuffle else SequentialSampler(dataset), batch_size, drop_last)
    if defer:
        if not hasattr(dataset, "finish"):
            raise TypeError(f"{type(dataset).__name__} has no prepare/finish split; load it finished")
        seed = int(torch.randint(2**62, ()))  # from the global RNG, like DataLoader's base seed

        def prepare(key):
            i, indices = key
            return dataset.prepare(indices, torch.Generator().manual_seed(seed + i))

        return ThreadLoader(prepare, _Enumerated(sampler), threads=max(1, num_workers),
                            pin_memory=kw.get("pin_memory", False))
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers,
                      persistent_workers=bool(num_workers) if persistent_workers is None else persistent_workers,
                      worker_init_fn=_worker_init, **kw)


class _Enumerated:
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return enumerate(self.items)


def _worker_init(_):
    torch.set_num_threads(1)
