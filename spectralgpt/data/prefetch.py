"""A loader of threads for batches that need no Python-heavy work: copies out of memory-mapped shards.

When the float work of the augmentation runs on the training device (``prepare``/``finish``), what is left
for the loader is one gather of stored uint16 pixels per batch, which numpy does without the GIL. Threads
then beat DataLoader's worker processes by a wide margin: nothing is pickled and no batch is copied into a
fresh shared-memory segment and faulted in again by the consumer. Batches come out in order, `depth` of them
in flight, optionally pinned for an asynchronous copy to a GPU.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import torch


def pin(batch):
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    if isinstance(batch, dict):
        return {k: pin(v) for k, v in batch.items()}
    return batch


class ThreadLoader:
    """Iterate ``fn(key)`` for each key of `keys` (re-iterated on each ``iter``), computed ahead in
    `threads` threads with at most `depth` results waiting. `fn` must be thread-safe: draw randomness
    from a generator of its own, never from torch's global one."""

    def __init__(self, fn: Callable, keys: Iterable, threads: int = 2, depth: int | None = None,
                 pin_memory: bool = False):
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.fn, self.keys, self.threads = fn, keys, threads
        self.depth = depth or 2 * threads
        self.pin_memory = pin_memory

    def __len__(self):
        return len(self.keys)

    def _load(self, key):
        out = self.fn(key)
        return pin(out) if self.pin_memory else out

    def __iter__(self):
        with ThreadPoolExecutor(self.threads, thread_name_prefix="loader") as pool:
            pending: deque = deque()
            keys = iter(self.keys)
            try:
                for key in keys:
                    pending.append(pool.submit(self._load, key))
                    if len(pending) >= self.depth:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:  # an abandoned iteration (break, exception) does not wait for batches nobody wants
                for f in pending:
                    f.cancel()
