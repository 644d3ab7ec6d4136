"""Any directory tree or tar archive of GeoTIFFs: unlabelled images for pretraining.

Layout::

    <root>/**/*.tif|*.tiff          one sample per file
    <root>/**/*.tar                 tar archives in the tree: one sample per GeoTIFF member
    <root> itself a .tar            one sample per GeoTIFF member

Tar members are read in place through GDAL's ``/vsitar/`` (never extracted); listing reads only tar headers.
Band names come from each file's band descriptions, or from the option ``band_order=[...]``, which, when given,
*overrides* the descriptions (a file without descriptions and no band_order is a `missing_bands` sample).
Label: None. Splits: a hash split of the id (80/10/10) when split is given. Sample id: the path relative to
<root> without extension (``scenes/a`` for ``<root>/scenes/a.tif``; ``shard-0/x/y`` for member ``x/y.tif`` of
``<root>/shard-0.tar``; the member path for a root that is a tar).
"""

from __future__ import annotations

import os

from spectralgpt.data.sample import Sample
from spectralgpt.data.sources.base import Entry, SourceDataset
from spectralgpt.io import raster

_EXTS = (".tif", ".tiff")
_TARS = (".tar",)


def _stem(p: str) -> str:
    return os.path.splitext(p)[0]


class Folder(SourceDataset):
    kind = "folder"
    LAYOUT = "<root>/**/*.tif or *.tiff, <root>/**/*.tar of GeoTIFFs, or <root> itself a .tar"
    OPTIONS = {"band_order": None}

    def _tar_entries(self, tar: str, prefix: str) -> list[Entry]:
        out = []
        for m in raster.list_tar_members(tar, _EXTS):
            sid = f"{prefix}/{_stem(m)}" if prefix else _stem(m)
            out.append(Entry(sid, raster.vsitar(tar, m), None, {"tar": tar, "member": m}))
        return out

    def _index(self) -> list[Entry]:
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

    def _read(self, e: Entry) -> Sample:
        order = self.options["band_order"]
        r = raster.read_multiband(e.path, self.bands, band_order=order, use_descriptions=order is None)
        return self._sample(e, r, label=None, nodata=r.nodata, file_bands=r.meta["file_bands"])
