"""Atomic file writes: write to a temporary name in the target folder, fsync, then rename over the target.

A reader never sees a half-written file, and an interrupted write leaves the previous version intact.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _temp_beside(path: str | os.PathLike) -> tuple[int, str]:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True):
    """Yield a temporary path beside `path` for writers that take a file name (torch.save, safetensors,
    rasterio); on success it is fsynced and renamed to `path`, on error removed."""
    fd, tmp = _temp_beside(path)
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", fsync: bool = True, **kwargs):
    """Open a temporary file beside `path`; on success it is renamed to `path`, on error removed."""
    with atomic_path(path, fsync=False) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
        f.flush()
        if fsync:
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> str:
    """Write `text` to `path` atomically; returns the path."""
    with atomic_open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return os.fspath(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> str:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_open(path, "wb", fsync=fsync) as f:
        f.write(data)
    return os.fspath(path)
