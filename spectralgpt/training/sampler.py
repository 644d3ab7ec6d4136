"""Deterministic, resumable, rank-aware batches: the data order is a pure function of (seed, epoch).

`ResumableBatches` yields (epoch, step, indices); `SeededBatches` turns that key into a batch, drawing the
augmentation randomness from a seed derived from (seed, epoch, step, rank) - in the loader's processes also
when the float work of the augmentation is left to the training device (``prepare_only``). Together they make a run that is
killed and resumed see exactly the same batches, with exactly the same augmentations, as one that was not -
whatever the number of DataLoader workers.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler, default_collate


class ResumableBatches(Sampler):
    """Each epoch is a permutation seeded by (seed, epoch) (0..n-1 when not shuffling), padded to a multiple
    of `world_size` and strided by `rank` as DistributedSampler does, then cut into batches. `set_position`
    skips the batches a killed run already consumed."""

    def __init__(self, n: int, batch_size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = True,
                 rank: int = 0, world_size: int = 1):
        if n < 1:
            raise ValueError("cannot sample from an empty dataset")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.seed, self.shuffle, self.drop_last = n, batch_size, seed, shuffle, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0
        if self.batches_per_epoch() == 0:
            raise ValueError(f"{n} samples make no full batch of {batch_size} on {world_size} process(es)")

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        order += order[: (-self.n) % self.world_size]
        return order[self.rank:: self.world_size]

    def batches_per_epoch(self) -> int:
        per_rank = -(-self.n // self.world_size)
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start

    def __iter__(self):
        idx = self.indices(self.epoch)
        for step in range(self.start, self.batches_per_epoch()):
            yield self.epoch, step, idx[step * self.batch_size:(step + 1) * self.batch_size]


class SeededBatches(Dataset):
    """Map (epoch, step, indices) to a batch. Datasets with batched augmentation (a `batch(indices)` method)
    get the whole index list; others are indexed item by item and collated."""

    def __init__(self, dataset, seed: int = 0, rank: int = 0, prepare_only: bool = False):
        self.dataset, self.seed, self.rank, self.prepare_only = dataset, seed, rank, prepare_only

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, step, indices = key
        seed = ((self.seed * 1_000_003 + epoch) * 1_000_033 + step) * 1009 + self.rank
        if self.prepare_only:  # finish() runs on the training device; a private generator is thread-safe
            return self.dataset.prepare(list(indices), torch.Generator().manual_seed(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if hasattr(self.dataset, "batch"):
                return self.dataset.batch(list(indices))
            return default_collate([self.dataset[i] for i in indices])
