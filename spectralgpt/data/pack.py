"""Pack a folder tree of GeoTIFFs into tar shards, the raw-corpus layout that keeps a million images manageable
in DVC (a few thousand tracked files instead of a million) and that the ``folder`` reader reads in place.

Deterministic: members are the sorted relative paths, cut into consecutive groups of ``members`` files, written
as ``shard-000000.tar`` ... with fixed metadata (mtime 0, uid/gid 0, no user/group names, mode 0644, PAX
format), so the same input gives byte-identical tars on any machine. Resumable: each tar is written to a
temporary name and renamed; a run finds the finished tars, checks each one's member names and sizes against the
files it should hold (headers only, no data read) and skips those that match; others are rewritten. Adding files
that sort after the existing ones changes only the last tar; files inserted earlier shift every later tar.
"""

from __future__ import annotations

import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from spectralgpt.io.atomic import atomic_path

log = logging.getLogger(__name__)

SUFFIXES = (".tif", ".tiff")


@dataclass
class PackResult:
    tars: list[str]
    written: int
    skipped: int
    members: int


def list_files(src: str | os.PathLike, suffixes=SUFFIXES) -> list[str]:
    """Sorted POSIX paths, relative to `src`, of the files under it ending in `suffixes`."""
    src = Path(src)
    out = [p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes)]
    return sorted(out)


def _info(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0o644, 0, 0, "", ""
    return ti


def _matches(tar_path: Path, src: Path, names: list[str]) -> bool:
    """A finished tar holds exactly `names` with the sizes the source files have now (headers only)."""
    try:
        with tarfile.open(tar_path, "r:") as tf:
            got = [(m.name, m.size) for m in tf.getmembers()]
    except (OSError, tarfile.TarError):
        return False
    return got == [(n, (src / n).stat().st_size) for n in names]


def _write(tar_path: Path, src: Path, names: list[str]) -> None:
    with atomic_path(tar_path) as tmp, open(tmp, "wb") as f, tarfile.open(fileobj=f, mode="w:",
                                                                         format=tarfile.PAX_FORMAT) as tf:
        for n in names:
            with open(src / n, "rb") as member:
                tf.addfile(_info(n, os.fstat(member.fileno()).st_size), member)


def pack(src: str | os.PathLike, dst: str | os.PathLike, members: int = 1000, suffixes=SUFFIXES,
         progress=None) -> PackResult:
    """Pack the GeoTIFFs under `src` into ``dst/shard-NNNNNN.tar`` of `members` files each (see module doc).
    `progress`: called as progress(done_tars, total_tars). Tars in `dst` beyond the needed count are removed."""
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    src, dst = Path(src).resolve(), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"pack: source folder {src} does not exist")
    if dst.resolve() == src or src in dst.resolve().parents:
        raise ValueError(f"pack: the output {dst} must lie outside the source folder {src}")
    files = list_files(src, suffixes)
    if not files:
        raise ValueError(f"pack: no {'/'.join(suffixes)} files under {src}")
    dst.mkdir(parents=True, exist_ok=True)
    groups = [files[i:i + members] for i in range(0, len(files), members)]
    tars, written, skipped = [], 0, 0
    for k, names in enumerate(groups):
        path = dst / f"shard-{k:06d}.tar"
        if path.exists() and _matches(path, src, names):
            skipped += 1
        else:
            _write(path, src, names)
            written += 1
        tars.append(str(path))
        if progress is not None:
            progress(k + 1, len(groups))
    for stale in sorted(dst.glob("shard-*.tar"))[len(groups):]:
        stale.unlink()
    log.info("packed %d files from %s into %d tars in %s (%d written, %d already complete)", len(files), src,
             len(groups), dst, written, skipped)
    return PackResult(tars, written, skipped, len(files))
