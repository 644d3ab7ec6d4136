"""Data-loading throughput: per-file GeoTIFF reading (the original pipeline) vs the shard-backed loader.

Both sides serve the same synthetic 12-band 128 px images with the pretraining augmentation (per-image
per-band min-max, RandomResizedCrop scale 0.2-1.0 to 128 px with bicubic interpolation, horizontal flip)
through a DataLoader with the same batch size and worker count, and each batch is handed to the training
device (`--device`, default cuda when there is one):

(a) per file, as the original code does: open each GeoTIFF with rasterio in __getitem__, min-max in
    numpy (float64, (H, W, C), as skimage.imread + the original transform give), then per sample crop,
    resize (F.interpolate bicubic on the float64 tensor, what torchvision's RandomResizedCrop does) and
    flip, default collation;
(b) shards, augmentation in the loader's processes: ``PretrainDataset`` over a memory-mapped
    ``ShardCorpus`` via ``make_loader`` (augmentation once per batch, one grid_sample) - what training
    does on a CPU;
(c) shards, augmentation on the device: ``make_loader(..., defer=True)`` ships the stored uint16 pixels
    with the drawn crops; ``dataset.finish`` runs after the copy - what training does on a GPU
    (``TrainConfig.augment_on="auto"``). On a CPU-only machine (c) is also printed without the device
    step: the rate at which the loader's processes alone can feed an accelerator.

    python benchmarks/data_throughput.py [--n 512] [--workers 2] [--batch 64] [--epochs 2] [--device cuda]

On a GPU machine, `taskset -c 0,1 python benchmarks/data_throughput.py` measures what 2 cores can feed it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spectralgpt.bands import PRETRAIN_BANDS  # noqa: E402
from spectralgpt.data.datasets import PretrainDataset, make_loader, rrc_boxes  # noqa: E402
from spectralgpt.data.preprocess import preprocess  # noqa: E402
from spectralgpt.data.sample import Sample  # noqa: E402
from spectralgpt.data.synthetic import generate  # noqa: E402
from spectralgpt.training.engine import to_device  # noqa: E402


class PerFileDataset(Dataset):
    """The original pipeline: one GeoTIFF decode per sample, then per-sample transforms."""

    def __init__(self, files, size=128, augment=True):
        self.files, self.size, self.augment = files, size, augment

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with rasterio.open(self.files[i]) as d:
            img = d.read().transpose(1, 2, 0).astype(np.float64)  # (H, W, C) like skimage.imread
        lo = img.min(axis=(0, 1), keepdims=True)
        hi = img.max(axis=(0, 1), keepdims=True)
        img = (img - lo) / (hi - lo + 1e-10)
        x = torch.from_numpy(img.transpose(2, 0, 1))  # ToTensor keeps float64
        if not self.augment:
            return x.float()
        top, left, h, w = (int(v[0]) for v in rrc_boxes(1, x.shape[-2], x.shape[-1]))
        y = F.interpolate(x[None, :, top:top + h, left:left + w], size=(self.size, self.size), mode="bicubic",
                          align_corners=False)[0]
        if torch.rand(1) < 0.5:
            y = y.flip(-1)
        return y


class TifFolder:
    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with rasterio.open(self.files[i]) as d:
            return Sample(id=Path(self.files[i]).stem, image=d.read(), bands=tuple(d.descriptions), crs=d.crs,
                          transform=d.transform, source=str(self.files[i]))


def _rate(loader, epochs, device=None, finish=None):
    """Images per second through `loader`, each batch moved to `device` (and finished there)."""
    def consume(b):
        if device is not None:
            b = to_device(b, device)
        if finish is not None:
            b = finish(b)
        return (b["index"] if isinstance(b, dict) else b).shape[0]

    it = iter(loader)
    consume(next(it))  # warm-up: worker start
    _sync(device)
    n, t0 = 0, time.perf_counter()
    for b in it:
        n += consume(b)
    for _ in range(epochs - 1):
        for b in loader:
            n += consume(b)
    _sync(device)
    return n / (time.perf_counter() - t0)


def _sync(device):
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--compress", default=None, help="GDAL compression of the GeoTIFFs, e.g. deflate")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        generate("pretrain", tmp / "tif", n=a.n, size=a.size, workers=a.workers, compress=a.compress)
        print(f"generated {a.n} GeoTIFFs (12 bands, {a.size} px, compress={a.compress}) in "
              f"{time.perf_counter() - t:.1f} s")
        files = sorted(str(p) for p in (tmp / "tif").glob("*.tif"))
        t = time.perf_counter()
        preprocess(TifFolder(files), tmp / "shards", size=a.size, shard_size=256, workers=a.workers)
        print(f"preprocessed into shards in {time.perf_counter() - t:.1f} s")

        pin = device.type == "cuda"
        per_file = DataLoader(PerFileDataset(files, a.size), batch_size=a.batch, shuffle=True,
                              num_workers=a.workers, persistent_workers=a.workers > 0, pin_memory=pin)
        ra = _rate(per_file, a.epochs, device)
        ds = PretrainDataset(tmp / "shards", size=a.size, bands=PRETRAIN_BANDS, interpolation="bicubic")
        rb = _rate(make_loader(ds, a.batch, num_workers=a.workers, pin_memory=pin), a.epochs, device)
        deferred = make_loader(ds, a.batch, num_workers=a.workers, pin_memory=pin, defer=True)
        rc = _rate(deferred, a.epochs, device, ds.finish)
        rc0 = _rate(deferred, a.epochs)
    print(f"workers={a.workers} batch={a.batch} images={a.n}x{a.epochs} epochs, 12 bands, {a.size} px, "
          f"device={device}, threads={torch.get_num_threads()}, cores={len(os.sched_getaffinity(0))}")
    print(f"(a) per-file GeoTIFF + per-sample aug in the loader : {ra:8.1f} images/s")
    print(f"(b) shards + batched aug in the loader              : {rb:8.1f} images/s   ratio {rb / ra:5.1f}x")
    print(f"(c) shards + batched aug on {device.type:<4}                    : {rc:8.1f} images/s   "
          f"ratio {rc / ra:5.1f}x")
    print(f"    (c)'s loader alone (uint16 pixels + crop boxes) : {rc0:8.1f} images/s   ratio {rc0 / ra:5.1f}x")


if __name__ == "__main__":
    main()
