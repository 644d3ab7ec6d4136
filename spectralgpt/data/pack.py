"""Tar shards of GeoTIFFs, the raw-corpus layout that keeps a million images manageable in DVC (a few thousand
tracked files instead of a million), and the index beside each tar that lets the ``folder`` reader list them
without walking every tar header.

Packing. `pack` cuts the sorted relative paths of a tree's GeoTIFFs into consecutive groups of ``members``
files, written as ``shard-000000.tar`` ... with fixed metadata (mtime 0, uid/gid 0, no user/group names, mode
0644, PAX format, UTF-8 names), so the same input gives byte-identical tars on any machine. Beside each tar it
writes ``shard-000000.tar.index.json`` (see below), also deterministic. Resumable: every file is written to a
temporary name and renamed, so an interrupted run leaves no half-written tar under a shard's name; a rerun keeps
a finished tar only when its bytes are exactly the bytes it would write now (the sources are streamed through
the same writer and compared with the tar, nothing written), so a source file edited in place, even to the
same size, or a tar edited after packing, is rewritten. Adding files that sort after the existing ones changes
only the last tar; files inserted earlier shift every later tar.

The index (``<tar>.index.json``) is two lines of compact JSON: a head naming the format, its version and the
SHA-256 of the second line, and a body that records the tar's name and byte size, the offset of its
end-of-archive block, and for every member ``[name, header offset (its PAX header's when it has one), data
offset, size, regular file?, BLAKE2b-128 of its header blocks]``. It is a listing cache that is never trusted blindly: `tar_members` uses it
only when its digest is right, the tar has the recorded size, the members form an unbroken chain from offset 0
to the end block, and every member's header bytes, read at the recorded offset, have the recorded digest (one
small read per member, no tar parsing) -- which is exactly what a header walk would find. Otherwise, and for a
tar without an index (packed by other tools), it walks the tar's headers, with a warning when an index was
there but did not match. `header_matches` re-checks one member just before it is read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from spectralgpt.io.atomic import atomic_path, atomic_write_bytes

log = logging.getLogger(__name__)

SUFFIXES = (".tif", ".tiff")
INDEX_SUFFIX = ".index.json"
INDEX_FORMAT = "spectralgpt-tar-index"
INDEX_VERSION = 1
_SHARD = re.compile(r"^shard-(\d{6})\.tar$")
_TEMP = re.compile(r"^\.shard-\d{6}\.tar(?:\.index\.json)?\.[A-Za-z0-9_]+\.tmp$")  # atomic_path's names
_BLOCK = tarfile.BLOCKSIZE
_ZERO_BLOCK = bytes(_BLOCK)
_MAX_HEADER = 1 << 20  # header blocks of one member (PAX records included) larger than this are refused
_ENCODING, _ERRORS = "utf-8", "surrogateescape"


class Member(NamedTuple):
    """One tar member: name, offset of its first header block, offset of its data, size, regular file or not,
    and the BLAKE2b-128 digest (hex) of its header blocks ``[header, offset)``."""

    name: str
    header: int
    offset: int
    size: int
    regular: bool
    digest: str


@dataclass
class PackResult:
    tars: list[str]
    written: int
    skipped: int
    members: int
    indexed: int = 0  # index files written (new or refreshed)


def list_files(src: str | os.PathLike, suffixes=SUFFIXES) -> list[str]:
    """Sorted POSIX paths, relative to `src`, of the files under it ending in `suffixes`."""
    src = Path(src)
    out = [p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes)]
    return sorted(out)


def index_path(tar_path: str | os.PathLike) -> str:
    """The index file beside a tar: ``<tar>.index.json``."""
    return os.fspath(tar_path) + INDEX_SUFFIX


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _header_digest(buf: bytes) -> str:
    return hashlib.blake2b(buf, digest_size=16).hexdigest()


# ------------------------------------------------------------------------------------------------ reading


def scan_tar(tar_path: str | os.PathLike) -> tuple[list[Member], int]:
    """Walk an uncompressed tar's headers: its members (in archive order) and the offset of its end block
    (``mismatch(tar_path, members, end, size)`` later tells whether the tar still is what this walk found).

    Raises `tarfile.TarError` / `OSError` when it is not a readable uncompressed tar.
    """
    tar_path = os.fspath(tar_path)
    with open(tar_path, "rb") as f, tarfile.open(fileobj=f, mode="r:", encoding=_ENCODING, errors=_ERRORS) as tf:
        infos = tf.getmembers()
        end = tf.offset  # tarfile stops at the first zero block: its offset
        fd = f.fileno()
        out = [Member(m.name, m.offset, m.offset_data, m.size, m.isreg(),
                      _header_digest(os.pread(fd, m.offset_data - m.offset, m.offset))) for m in infos]
    return out, end


def _index_lines(tar_path: str, members: list[Member], end: int) -> str:
    body = json.dumps({"tar": os.path.basename(tar_path), "tar_size": os.path.getsize(tar_path), "end": end,
                       "members": [list(m) for m in members]}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    head = json.dumps({"format": INDEX_FORMAT, "version": INDEX_VERSION,
                       "sha256": hashlib.sha256(body.encode("utf-8", _ERRORS)).hexdigest()}, sort_keys=True,
                      separators=(",", ":"))
    return f"{head}\n{body}\n"


def index_text(tar_path: str | os.PathLike) -> str:
    """The index of a tar as it is now (a header walk), as the exact text `pack` writes beside it."""
    tar_path = os.fspath(tar_path)
    members, end = scan_tar(tar_path)
    return _index_lines(tar_path, members, end)


def write_index(tar_path: str | os.PathLike) -> bool:
    """Write (or refresh) the index beside `tar_path`; False when the file there already has those bytes."""
    text, path = index_text(tar_path).encode("utf-8", _ERRORS), index_path(tar_path)
    try:
        with open(path, "rb") as f:
            if f.read() == text:
                return False
    except OSError:
        pass
    atomic_write_bytes(path, text)
    return True


def _parse_index(raw: bytes) -> tuple[dict | None, str]:
    """The body of an index file when its header names our format and its digest matches, else (None, why)."""
    head, sep, body = raw.partition(b"\n")
    try:
        meta = json.loads(head)
        if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT or meta.get("version") != INDEX_VERSION:
            return None, f"not a {INDEX_FORMAT} version {INDEX_VERSION} file"
        if not sep or not body.endswith(b"\n") or hashlib.sha256(body[:-1]).hexdigest() != meta.get("sha256"):
            return None, "its digest does not match its content (edited or damaged)"
        doc = json.loads(body)
    except ValueError as e:
        return None, f"unreadable ({e})"
    return (doc, "") if isinstance(doc, dict) else (None, "malformed")


def mismatch(tar_path: str | os.PathLike, members: list[Member], end: int, size: int) -> str:
    """Why `members` (ending at the end block `end`, in a tar of `size` bytes) are not what a header walk of the
    tar at `tar_path` would find now; "" when they are: the size is the same, the members chain from offset 0
    to the end block, and each member's header bytes at its offset have its digest (one read per member)."""
    tar_path = os.fspath(tar_path)
    now = os.path.getsize(tar_path)
    if now != size:
        return f"the tar is {now} bytes, the index recorded {size}"
    try:
        at = 0
        with open(tar_path, "rb") as f:
            fd = f.fileno()
            for m in members:
                if m.header != at or not 0 < m.offset - m.header <= _MAX_HEADER or not 0 <= m.size <= size:
                    return f"member {m.name!r} does not start where the previous one ends"
                if _header_digest(os.pread(fd, m.offset - m.header, m.header)) != m.digest:
                    return f"the header of member {m.name!r} at offset {m.header} is not the indexed one"
                at = m.offset + -(-m.size // _BLOCK) * _BLOCK
            if end != at or os.pread(fd, _BLOCK, end) != _ZERO_BLOCK:
                return f"no end-of-archive block at offset {end}"
    except (TypeError, ValueError, OverflowError) as e:
        return f"malformed ({type(e).__name__}: {e})"
    return ""


def _indexed_members(tar_path: str, doc: dict) -> tuple[list[Member] | None, str]:
    """The members an index body describes when it matches the tar at `tar_path` now, else (None, why not)."""
    if doc.get("tar") != os.path.basename(tar_path):
        return None, f"it indexes {doc.get('tar')!r}"
    try:
        members = [Member(*row) for row in doc["members"]]
        why = mismatch(tar_path, members, doc["end"], doc["tar_size"])
    except (KeyError, TypeError) as e:
        return None, f"malformed ({type(e).__name__}: {e})"
    return (None, why) if why else (members, "")


def tar_members(tar_path: str | os.PathLike) -> tuple[list[Member], bool]:
    """A tar's members (archive order) and whether its index was used.

    The index beside the tar is used when it matches the tar where it matters (see the module doc); otherwise
    the headers are walked, with a warning naming the mismatch when an index was there.
    Raises `tarfile.TarError` / `OSError` when the tar is not a readable uncompressed tar.
    """
    tar_path = os.fspath(tar_path)
    ipath = index_path(tar_path)
    try:
        with open(ipath, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raw = None
    except OSError as e:
        raw = e
    if raw is not None:
        if isinstance(raw, OSError):
            members, why = None, f"unreadable ({raw})"
        else:
            doc, why = _parse_index(raw)
            members, why = _indexed_members(tar_path, doc) if doc is not None else (None, why)
        if members is not None:
            return members, True
        log.warning("%s: its index %s does not match it (%s); listing it by a header walk instead (rerun "
                    "`spectralgpt data pack` to refresh the index)", tar_path, ipath, why)
    return scan_tar(tar_path)[0], False


def header_matches(tar_path: str | os.PathLike, header: int, offset: int, digest: str) -> bool:
    """Whether the member header blocks at ``[header, offset)`` of the tar still have `digest` (one read)."""
    if not 0 < offset - header <= _MAX_HEADER:
        return False
    try:
        fd = os.open(tar_path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return _header_digest(os.pread(fd, offset - header, header)) == digest
    except (OSError, ValueError, OverflowError):
        return False
    finally:
        os.close(fd)


def copy_member(tar_path: str | os.PathLike, m: Member, out, chunk: int = 1 << 20) -> None:
    """Copy member `m`'s data to the binary file `out`, after checking its header is still `m`'s (ValueError
    when it is not or the tar ends early)."""
    with open(tar_path, "rb") as f:
        fd = f.fileno()
        if not header_matches(tar_path, m.header, m.offset, m.digest):
            raise ValueError(f"the header of {m.name!r} at offset {m.header} changed")
        at, stop = m.offset, m.offset + m.size
        while at < stop:
            buf = os.pread(fd, min(chunk, stop - at), at)
            if not buf:
                raise ValueError(f"{tar_path} ends inside member {m.name!r}")
            out.write(buf)
            at += len(buf)


# ------------------------------------------------------------------------------------------------ writing


def _info(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0o644, 0, 0, "", ""
    return ti


def _tar_size(names: list[str], sizes: list[int]) -> int:
    """The byte size of the tar `_write_to` makes of members with these names and sizes."""
    n = sum(len(_info(a, s).tobuf(tarfile.PAX_FORMAT, _ENCODING, _ERRORS)) + _padded(s) for a, s in zip(names, sizes))
    n += 2 * _BLOCK
    return -(-n // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _write_to(fileobj, src: Path, names: list[str]) -> None:
    with tarfile.open(fileobj=fileobj, mode="w:", format=tarfile.PAX_FORMAT, encoding=_ENCODING,
                      errors=_ERRORS) as tf:
        for n in names:
            with open(src / n, "rb") as member:
                tf.addfile(_info(n, os.fstat(member.fileno()).st_size), member)


class _Differs(Exception):
    pass


class _CompareSink:
    """A write-only file object that checks each write against the next bytes of an existing file."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def write(self, b) -> int:
        b = bytes(b)
        if self.f.read(len(b)) != b:
            raise _Differs
        self.n += len(b)
        return len(b)

    def tell(self) -> int:
        return self.n


def _same_bytes(tar_path: Path, src: Path, names: list[str]) -> bool:
    """Whether the tar at `tar_path` is byte for byte what `_write_to` would write from `src` now."""
    try:
        if tar_path.stat().st_size != _tar_size(names, [(src / n).stat().st_size for n in names]):
            return False
        with open(tar_path, "rb") as f:
            _write_to(_CompareSink(f), src, names)
            return f.read(1) == b""
    except (_Differs, OSError):
        return False


def pack(src: str | os.PathLike, dst: str | os.PathLike, members: int = 1000, suffixes=SUFFIXES,
         progress=None) -> PackResult:
    """Pack the GeoTIFFs under `src` into ``dst/shard-NNNNNN.tar`` of `members` files each, with an index beside
    each (see module doc). `progress`: called as progress(done_tars, total_tars). Shard tars (and their
    indexes) in `dst` numbered beyond the needed count are removed; nothing else there is touched."""
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
    for left in sorted(dst.iterdir()):  # temporary files of an interrupted run (never renamed into place)
        if _TEMP.match(left.name) and left.is_file():
            left.unlink()
    groups = [files[i:i + members] for i in range(0, len(files), members)]
    tars, written, skipped, indexed = [], 0, 0, 0
    for k, names in enumerate(groups):
        path = dst / f"shard-{k:06d}.tar"
        if path.exists() and _same_bytes(path, src, names):
            skipped += 1
        else:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                _write_to(f, src, names)
            written += 1
        indexed += write_index(path)
        tars.append(str(path))
        if progress is not None:
            progress(k + 1, len(groups))
    for stale in sorted(dst.iterdir()):
        m = _SHARD.match(stale.name[:-len(INDEX_SUFFIX)] if stale.name.endswith(INDEX_SUFFIX) else stale.name)
        if m and int(m.group(1)) >= len(groups) and stale.is_file():
            stale.unlink()
    log.info("packed %d files from %s into %d tars in %s (%d written, %d already complete, %d indexes written)",
             len(files), src, len(groups), dst, written, skipped, indexed)
    return PackResult(tars, written, skipped, len(files), indexed)
