"""TorchGeo-style datasets over our readers, with or without torchgeo installed.

Each dataset follows TorchGeo's ``NonGeoDataset`` convention (and *is* one when torchgeo imports): indexing gives a
dict of tensors, ``transforms`` (a callable on that dict) is applied last, ``plot(sample)`` draws it::

    from spectralgpt.integrations.torchgeo import GeoBenchDataset, ReaderDataset, UCMercedDataset

    ds = GeoBenchDataset("data/geobench/classification_v1.0/m-eurosat", split="train")
    ds[0]   # {"image": float32 (12, 64, 64), "label": int64 ()}
    ReaderDataset("segmunich", "data/raw/segmunich", split="test", fill_missing="mean")[0]   # {"image", "mask"}

Keys: ``image`` float32 (C, H, W) in the reader's band order (``dataset.bands``), values as stored (no scaling:
normalise in ``transforms``); for change detection (OSCD) ``image`` is (2, C, H, W), both dates, as TorchGeo's
OSCD. ``label``: int64 () class index, or float32 (K,) multi-hot; ``mask``: int64 (H, W) for segmentation and
change maps. Unlabelled samples have neither. A sample that cannot be read raises the reader's `BadSample`
(``spectralgpt.data.validate.scan`` lists them beforehand). ``classes``: the reader's class names.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from spectralgpt.bands import RGB_BANDS, equivalent_band
from spectralgpt.data.sources import SourceDataset, load_dataset

try:  # a real TorchGeo NonGeoDataset where torchgeo imports (its own imports may fail: torchvision, ...)
    from torchgeo.datasets import NonGeoDataset as _Base
except Exception:  # noqa: BLE001 - any failure to import torchgeo means: work without it
    _Base = torch.utils.data.Dataset

#: True when the datasets subclass torchgeo.datasets.NonGeoDataset
TORCHGEO = _Base is not torch.utils.data.Dataset


def sample_dict(sample) -> dict[str, torch.Tensor]:
    """A reader `Sample` as TorchGeo's sample dict (see the module docstring)."""
    image = torch.from_numpy(np.ascontiguousarray(sample.image, dtype=np.float32))
    if sample.image2 is not None:
        image = torch.stack([image, torch.from_numpy(np.ascontiguousarray(sample.image2, dtype=np.float32))])
    out = {"image": image}
    y = sample.label
    if y is None:
        return out
    if isinstance(y, np.ndarray) and y.ndim == 2:
        out["mask"] = torch.from_numpy(y.astype(np.int64))
    elif isinstance(y, np.ndarray) and y.ndim == 1:
        out["label"] = torch.from_numpy(y.astype(np.float32))
    else:
        out["label"] = torch.tensor(int(y), dtype=torch.long)
    return out


class ReaderDataset(_Base):
    """Any reader (`spectralgpt.data.sources.load_dataset` kind, or a reader instance) as a NonGeoDataset.

    kind: a dataset kind ('geobench', 'ucmerced', 'eurosat', ...) or a `SourceDataset`; root, split, bands and
    options as for `load_dataset` (split defaults to 'train', as TorchGeo's datasets)."""

    def __init__(self, kind: str | SourceDataset, root=None, split: str | None = "train", bands="default",
                 transforms: Callable[[dict], dict] | None = None, **options):
        super().__init__()
        if isinstance(kind, SourceDataset):
            if root is not None or options:
                raise TypeError("root and reader options are for a dataset kind, not an existing reader")
            self.source = kind
        else:
            if root is None:
                raise TypeError(f"{kind}: root is required")
            self.source = load_dataset(kind, root, split=split, bands=bands, **options)
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable, got {type(transforms).__name__}")
        self.transforms = transforms

    @property
    def bands(self) -> tuple[str, ...] | None:
        return self.source.bands

    @property
    def classes(self) -> tuple[str, ...] | None:
        return self.source.class_names

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        out = sample_dict(self.source[index])
        return self.transforms(out) if self.transforms is not None else out

    def __str__(self) -> str:
        return f"{type(self).__name__} Dataset\n    type: NonGeoDataset\n    size: {len(self)}\n    source: " \
               f"{self.source!r}"

    def rgb_indices(self, bands=None) -> list[int] | None:
        """Positions of the bands nearest red, green and blue (by name or wavelength), or None."""
        bands = list(bands or self.bands or ())
        found = {}
        for i, b in enumerate(bands):
            try:
                e = equivalent_band(b, targets=RGB_BANDS)
            except ValueError:
                continue
            if e is not None and e not in found:
                found[e] = i
        return [found[b] for b in RGB_BANDS] if len(found) == 3 else None

    def plot(self, sample: dict, show_titles: bool = True, suptitle: str | None = None):
        """A matplotlib Figure: the image (true colour where red, green and blue are present, else the first
        band), the mask and a ``prediction`` when the sample has them; the label (and prediction) as titles."""
        import matplotlib.pyplot as plt

        image = sample["image"]
        image = image[0] if image.ndim == 4 else image
        image = image.detach().cpu().numpy().astype(np.float64)
        rgb = self.rgb_indices()
        pic = image[rgb].transpose(1, 2, 0) if rgb else image[0]
        lo, hi = np.percentile(pic, 2), np.percentile(pic, 98)
        pic = np.clip((pic - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        panels = [("image", pic, None)]
        for key in ("mask", "prediction"):
            if key in sample and torch.as_tensor(sample[key]).ndim >= 2:
                panels.append((key, torch.as_tensor(sample[key]).detach().cpu().numpy(), "tab20"))
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
        for ax, (title, data, cmap) in zip(axes[0], panels):
            ax.imshow(data, cmap=cmap if cmap else ("gray" if data.ndim == 2 else None), interpolation="nearest")
            ax.axis("off")
            if show_titles:
                ax.set_title(title if title != "image" else self._label_title(sample))
        if suptitle:
            fig.suptitle(suptitle)
        return fig

    def _label_title(self, sample: dict) -> str:
        if "label" not in sample:
            return "image"
        y = torch.as_tensor(sample["label"])
        names = self.classes
        if y.ndim == 0:
            i = int(y)
            return f"label: {names[i] if names and 0 <= i < len(names) else i}"
        on = torch.nonzero(y > 0.5).flatten().tolist()
        return "labels: " + ", ".join(names[i] if names and i < len(names) else str(i) for i in on)


class GeoBenchDataset(ReaderDataset):
    """A GEO-Bench task folder (`spectralgpt.data.sources.geobench`) as a NonGeoDataset."""

    def __init__(self, root, split: str | None = "train", bands="default",
                 transforms: Callable[[dict], dict] | None = None, **options):
        super().__init__("geobench", root, split=split, bands=bands, transforms=transforms, **options)


class UCMercedDataset(ReaderDataset):
    """UC Merced Land Use (`spectralgpt.data.sources.ucmerced`) as a NonGeoDataset: RGB images, 21 classes."""

    def __init__(self, root, split: str | None = "train", bands="default",
                 transforms: Callable[[dict], dict] | None = None, **options):
        super().__init__("ucmerced", root, split=split, bands=bands, transforms=transforms, **options)


__all__ = ["TORCHGEO", "GeoBenchDataset", "ReaderDataset", "UCMercedDataset", "sample_dict"]
