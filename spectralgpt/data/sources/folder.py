"""Any directory tree or tar archive of GeoTIFFs: unlabelled images for pretraining.

Layout::

    <root>/**/*.tif|*.tiff          one sample per file
    <root>/**/*.tar                 tar archives in the tree: one sample per GeoTIFF member
    <root> itself a .tar            one sample per GeoTIFF member

Tar members are read in place through GDAL's ``/vsitar/`` (never extracted). Listing a tar reads the index that
``spectralgpt data pack`` writes beside it (``<tar>.index.json``) when that index still matches the tar (same
byte size, every member's header bytes at the recorded offsets; see `spectralgpt.data.pack`), else walks the
tar's headers (tars from other tools, or changed since packing: with a warning). Just before a member is read,
its header is checked again at the listed offset; when it differs (the tar changed after listing) the tar is
walked again (with a warning) and the member is read where it now is (from a copy of its checked bytes), or is a
`missing_file` sample.
Band names come from each file's band descriptions, or from the option ``band_order=[...]``, which, when given,
*overrides* the descriptions (a file without descriptions and no band_order is a `missing_bands` sample).
Label: None. Splits: a hash split of the id (80/10/10) when split is given. Sample id: the path relative to
<root> without extension (``scenes/a`` for ``<root>/scenes/a.tif``; ``shard-0/x/y`` for member ``x/y.tif`` of
``<root>/shard-0.tar``; the member path for a root that is a tar).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import tarfile
import tempfile

from spectralgpt.data import pack
from spectralgpt.data.sample import BadSample, Reason, Sample
from spectralgpt.data.sources.base import Entry, SourceDataset
from spectralgpt.io import raster

_EXTS = (".tif", ".tiff")
_TARS = (".tar",)
log = logging.getLogger(__name__)


def _stem(p: str) -> str:
    return os.path.splitext(p)[0]


class Folder(SourceDataset):
    kind = "folder"
    LAYOUT = "<root>/**/*.tif or *.tiff, <root>/**/*.tar of GeoTIFFs, or <root> itself a .tar"
    OPTIONS = {"band_order": None}

    def _tar_entries(self, tar: str, prefix: str) -> list[Entry]:
        pre = f"{prefix}/" if prefix else ""
        try:
            members, _ = pack.tar_members(tar)
        except (tarfile.TarError, OSError, EOFError):  # compressed, missing or broken: tarfile's own reader
            return [Entry(pre + _stem(m), raster.vsitar(tar, m), None, {"tar": tar, "member": m})
                    for m in raster.list_tar_members(tar, _EXTS)]  # (which raises BadSample naming the tar)
        base = raster.vsitar(tar, "")
        return [Entry(pre + m.name[:m.name.rfind(".")], base + m.name.lstrip("/"), None,  # (the stem: cheaper)
                      {"tar": tar, "member": m.name, "check": (m.header, m.offset, m.digest)})
                for m in members if m.regular and m.name.lower().endswith(_EXTS)]

    def _moved(self, e: Entry) -> pack.Member | None:
        """None when tar member `e` is where it was listed (its header bytes unchanged there); when the tar changed
        since, the member where a new header walk (one per changed tar and process) finds it, else BadSample."""
        tar, name = e.info["tar"], e.info["member"]
        if pack.header_matches(tar, *e.info["check"]):
            return None
        rescans = self.__dict__.setdefault("_rescans", {})  # tar -> (its last walk, {name: member})
        walk = rescans.get(tar)
        if walk is not None:
            m = walk[1].get(name)
            if m is not None and pack.header_matches(tar, m.header, m.offset, m.digest):
                return m
            fresh = m is None and not pack.mismatch(tar, *walk[0])  # the tar is still what that walk found
        if walk is None or not fresh:
            log.warning("%s changed after it was listed: member %s is not at offset %d any more; walking its "
                        "headers again", tar, name, e.info["check"][0])
            try:
                size = os.path.getsize(tar)
                members, end = pack.scan_tar(tar)
            except (tarfile.TarError, OSError, EOFError) as ex:
                raise BadSample(Reason.UNREADABLE, f"{tar} changed after it was listed and is no longer a readable "
                                f"tar: {ex}", e.path) from ex
            walk = rescans[tar] = ((members, end, size), {m.name: m for m in members if m.regular})
        if name not in walk[1]:
            raise BadSample(Reason.MISSING_FILE, f"member {name} of {tar} was listed but is no longer in it (the "
                            "tar changed after listing: list the corpus again)", e.path)
        return walk[1][name]

    def _index(self) -> list[Entry]:
        # a million entries are a million new objects: the cyclic collector would walk them all again and again
        # (a third of the listing time at 1M); they hold no cycles, so it is paused while they are made
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._list()
        finally:
            if paused:
                gc.enable()

    def _list(self) -> list[Entry]:
        if os.path.isfile(self.root):
            if not self.root.lower().endswith(_TARS):
                raise ValueError(f"folder: root {self.root} is a file but not a .tar archive")
            found = self._tar_entries(self.root, "")
        else:
            found = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames.sort()
                for f in sorted(filenames):
                    p = os.path.join(dirpath, f)
                    rel = os.path.relpath(p, self.root).replace(os.sep, "/")
                    if f.lower().endswith(_EXTS):
                        found.append(Entry(_stem(rel), p))
                    elif f.lower().endswith(_TARS):
                        found.extend(self._tar_entries(p, _stem(rel)))
        out = []
        for e in found:
            e.split = self._split_of(e.id) if self.split is not None else None
            if self._keep(e.split):
                out.append(e)
        return out

    @contextlib.contextmanager
    def _member_path(self, e: Entry, moved: pack.Member | None):
        """The path to open for entry `e`: its own, or for a member of a tar changed since listing (`moved`) a
        temporary copy of the member's checked bytes -- GDAL keeps each tar's member list per process and trusts
        it while the tar's size and mtime (whole seconds) stay the same. Problems name the entry, not the copy."""
        if moved is None:
            yield e.path
            return
        with tempfile.TemporaryDirectory(prefix="spectralgpt-member-") as tmp:
            copy = os.path.join(tmp, os.path.basename(moved.name))
            try:
                with open(copy, "wb") as out:
                    pack.copy_member(e.info["tar"], moved, out)
            except (OSError, ValueError) as ex:
                raise BadSample(Reason.UNREADABLE, f"member {moved.name} of {e.info['tar']} changed while it was "
                                f"read: {ex}", e.path, e.id) from ex
            try:
                yield copy
            except BadSample as b:
                raise BadSample(b.reason, b.message.replace(copy, e.path), e.path, e.id) from b

    def check(self, i: int) -> None:
        e = self._entries[i]
        moved = self._moved(e) if e.error is None and "check" in e.info else None
        if moved is None:
            return super().check(i)
        with self._member_path(e, moved) as path, raster.open_raster(path):
            pass

    def _read(self, e: Entry) -> Sample:
        moved = self._moved(e) if "check" in e.info else None
        order = self.options["band_order"]
        with self._member_path(e, moved) as path:
            r = raster.read_multiband(path, self.bands, band_order=order, use_descriptions=order is None)
        return self._sample(e, r, label=None, nodata=r.nodata, file_bands=r.meta["file_bands"])
