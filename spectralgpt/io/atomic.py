"""Atomic file writes: write to a temporary name in the target folder, fsync, then rename over the target.

A reader never sees a half-written file, and an interrupted write leaves the previous version intact. The
renamed file gets the mode a plain `open(path, "w")` would give it (0o666 minus the umask, e.g. 0644), not the
temporary file's 0600, so other users and serving processes can read models, reports, shards and predictions.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

_PROC_STATUS = "/proc/self/status"


def _umask_from_proc() -> int | None:
    """The process umask from /proc/self/status (Linux >= 4.7); None where that line is not available.

    Reading it there is thread-safe, unlike the os.umask(0)-then-restore round trip, which briefly sets a umask
    of 0 for every thread of the process.
    """
    try:
        with open(_PROC_STATUS, encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _umask_round_trip() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: the umask at import, for systems without /proc (read once, while the package is imported)
_UMASK_AT_IMPORT = _umask_from_proc()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = _umask_round_trip()


def current_umask() -> int:
    """The umask now (from /proc where it is available, else the one read at import)."""
    mask = _umask_from_proc()
    return _UMASK_AT_IMPORT if mask is None else mask


def plain_file_mode() -> int:
    """The permission bits a plain `open(path, "w")` gives a new file: 0o666 minus the umask."""
    return 0o666 & ~current_umask()


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
        os.chmod(tmp, plain_file_mode())  # mkstemp made it 0600
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
