"""UC Merced Land Use (Yang & Newsam 2010): 2,100 aerial RGB images, 256 x 256 at 1 ft (0.3 m), 21 classes.

Layout (the archive ``UCMerced_LandUse.zip`` unzipped into <root>)::

    <root>/UCMerced_LandUse/Images/<class>/<class>NN.tif   3-band uint8 TIFF (red, green, blue), NN = 00..99
    <root>/uc_merced-<split>.txt                            optional split lists (torchgeo's, from "In-domain
                                                            representation learning for remote sensing"):
                                                            one file name per line, e.g. ``agricultural00.tif``

<root> may also be the ``UCMerced_LandUse`` folder or its ``Images`` folder itself (split lists are then looked
for there and in the folders above, up to the one holding ``UCMerced_LandUse``).

Bands: red, green, blue in file order, as the RGB camera ids ``RGB:RED``, ``RGB:GREEN``, ``RGB:BLUE``
(`spectralgpt.bands.RGB_CAMERA_BANDS`): what `load_dataset` reads by default (``bands=None`` too). The
Sentinel-2 pretraining bands are not in these images: ask for RGB ids, or let the model's band mapping place them.
Size: most images are 256 x 256, a few of the originals are a little smaller (e.g. 256 x 247); they are returned
as stored (``meta['size']``), the preprocessing fit (crop / tile / resize) makes them uniform.
Georeference: none (the TIFFs carry none).

Label: index of the class folder in the alphabetical class list `CLASSES` (agricultural = 0 ... tenniscourt = 20);
a file in a folder that is not one of the 21 classes is an `unknown_label` sample.
Splits: ``uc_merced-<split>.txt`` when present (a name not found under the class folders is a `missing_file`
sample); otherwise a deterministic hash split of the id (80/10/10). Sample id: the file stem (``airplane07``).
"""

from __future__ import annotations

import os
import re

from spectralgpt.bands import RGB_CAMERA_BANDS
from spectralgpt.data.sample import Reason, Sample
from spectralgpt.data.sources.base import Entry, SourceDataset, read_list
from spectralgpt.io import raster

CLASSES: tuple[str, ...] = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral", "denseresidential", "forest",
    "freeway", "golfcourse", "harbor", "intersection", "mediumresidential", "mobilehomepark", "overpass",
    "parkinglot", "river", "runway", "sparseresidential", "storagetanks", "tenniscourt",
)
_EXTS = (".tif", ".tiff")
_NAME = re.compile(r"^(?P<cls>[a-z]+)(?P<n>\d+)\.tiff?$", re.IGNORECASE)


class UCMerced(SourceDataset):
    kind = "ucmerced"
    LAYOUT = "<root>/UCMerced_LandUse/Images/<class>/<class>NN.tif (3-band RGB TIFFs in the 21 class folders)"
    CLASS_NAMES = CLASSES
    DEFAULT_BANDS = RGB_CAMERA_BANDS  # what load_dataset reads by default (see data.sources.default_bands)
    OPTIONS = {"band_order": RGB_CAMERA_BANDS}

    def _images_dir(self) -> str | None:
        for d in (os.path.join(self.root, "UCMerced_LandUse", "Images"), os.path.join(self.root, "Images"),
                  self.root):
            if os.path.isdir(d) and any(os.path.isdir(os.path.join(d, c)) for c in CLASSES):
                return d
        return None

    def _split_list(self, images: str) -> str | None:
        """uc_merced-<split>.txt in <root> or next to the UCMerced_LandUse folder."""
        for d in (self.root, os.path.dirname(os.path.dirname(images)), os.path.dirname(images)):
            p = os.path.join(d, f"uc_merced-{self.split}.txt")
            if os.path.isfile(p):
                return p
        return None

    def _entry(self, path: str, split: str | None) -> Entry:
        cls = os.path.basename(os.path.dirname(path))
        e = Entry(os.path.splitext(os.path.basename(path))[0], path, split, {"class": cls})
        if cls not in CLASSES:
            e.error = (Reason.UNKNOWN_LABEL, f"class folder {cls!r} is not a UC Merced class ({', '.join(CLASSES)})")
        return e

    def _index(self) -> list[Entry]:
        images = self._images_dir()
        if images is None:
            return []
        lst = self._split_list(images) if self.split is not None else None
        if lst is not None:
            out = []
            for line in read_list(lst):
                name = os.path.basename(line.strip())
                m = _NAME.match(name)
                cls = m.group("cls") if m else ""
                path = os.path.join(images, cls, name)
                e = self._entry(path, self.split)
                if e.error is None and not os.path.isfile(path):
                    e.error = (Reason.MISSING_FILE, f"split list {os.path.basename(lst)} names {name}, which is not "
                               f"under {images}/{cls}")
                if not m:
                    e.error = (Reason.UNKNOWN_LABEL, f"split list entry {line!r} is not a <class>NN.tif name")
                out.append(e)
            return out
        out = []
        for d in sorted(os.scandir(images), key=lambda d: d.name):
            if not d.is_dir():
                continue
            for f in sorted(os.scandir(d.path), key=lambda f: f.name):
                if f.name.lower().endswith(_EXTS) and f.is_file():
                    e = self._entry(f.path, None)
                    e.split = self._split_of(e.id)
                    if self._keep(e.split):
                        out.append(e)
        return out

    def _read(self, e: Entry) -> Sample:
        r = raster.read_multiband(e.path, self.bands, band_order=self.options["band_order"], use_descriptions=False)
        return self._sample(e, r, label=CLASSES.index(e.info["class"]), nodata=r.nodata,
                            size=list(r.array.shape[-2:]), **{"class": e.info["class"]})
