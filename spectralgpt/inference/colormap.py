"""Class colours for predicted maps, so a class map opens readably in QGIS or any GDAL reader.

A class has the same colour in every map: known class names (SegMunich, EuroSAT, change / no change) have a fixed
land-cover colour (water blue, forest green, built-up red, ...); any other name gets a colour from a fixed
20-colour list by its index. The nodata value (255) is transparent.

Where it is written: a single-band GeoTIFF keeps a colour table in the file (it survives GDAL's COG copy); a
multi-band one (class + probabilities) cannot hold a palette (GDAL makes it MINISBLACK and drops the table), so
the colour table and the category names go to the GDAL PAM sidecar ``<map>.aux.xml``, which GDAL (and QGIS)
read with the file. Category names are always written there (rasterio cannot write them into a GeoTIFF).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from spectralgpt.io.atomic import atomic_write_text

RGB = tuple[int, int, int]

#: Fixed colours by (lower-case) class name: SegMunich, EuroSAT, change detection.
NAMED: dict[str, RGB] = {
    # SegMunich
    "background": (0, 0, 0), "arable land": (255, 230, 120), "permanent crops": (230, 140, 40),
    "pastures": (170, 220, 90), "forests": (20, 110, 40), "surface water": (30, 100, 220),
    "shrub": (140, 170, 60), "open spaces": (210, 200, 170), "wetlands": (110, 190, 190),
    "mine, dump": (130, 90, 70), "artificial vegetation": (120, 230, 150), "urban fabric": (230, 60, 60),
    "buildings": (160, 20, 30),
    # EuroSAT
    "annualcrop": (255, 230, 120), "forest": (20, 110, 40), "herbaceousvegetation": (140, 200, 80),
    "highway": (90, 90, 90), "industrial": (170, 60, 170), "pasture": (170, 220, 90),
    "permanentcrop": (230, 140, 40), "residential": (230, 60, 60), "river": (60, 150, 240),
    "sealake": (20, 60, 180),
    # change detection
    "no change": (40, 40, 40), "no_change": (40, 40, 40), "unchanged": (40, 40, 40), "change": (255, 40, 40),
}

#: Colours by index for names not in NAMED (matplotlib's tab20, fixed here so no plotting library is needed).
CYCLE: tuple[RGB, ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
)
NODATA = 255


def class_colors(class_names: Sequence[str]) -> dict[int, tuple[int, int, int, int]]:
    """{class value: (r, g, b, 255)} for values 0..K-1, plus the nodata value as transparent."""
    out = {i: (*NAMED.get(str(n).strip().lower(), CYCLE[i % len(CYCLE)]), 255) for i, n in enumerate(class_names)}
    out[NODATA] = (0, 0, 0, 0)
    return out


def write_colormap(dst, class_names: Sequence[str]) -> None:
    """Put the class colour table on band 1 of an open single-band dataset (before it is closed)."""
    dst.write_colormap(1, class_colors(class_names))


def write_pam(path: str | os.PathLike, class_names: Sequence[str], count: int) -> Path:
    """Write ``<path>.aux.xml``: band 1's category names and colour table (palette interpretation), the other
    bands as plain grey (not RGB or alpha); GDAL reads it with the file. Returns the sidecar path."""
    colors = class_colors(class_names)
    entries = "".join(f'<Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>'
                      for r, g, b, a in (colors.get(v, (0, 0, 0, 0)) for v in range(NODATA + 1)))
    names = [str(n) for n in class_names] + [""] * (NODATA - len(class_names)) + ["nodata"]
    cats = "".join(f"<Category>{escape(n)}</Category>" for n in names)
    bands = [f'  <PAMRasterBand band="1">\n    <ColorInterp>Palette</ColorInterp>\n'
             f"    <CategoryNames>{cats}</CategoryNames>\n    <ColorTable>{entries}</ColorTable>\n  </PAMRasterBand>\n"]
    bands += [f'  <PAMRasterBand band="{b}">\n    <ColorInterp>Gray</ColorInterp>\n  </PAMRasterBand>\n'
              for b in range(2, count + 1)]
    sidecar = Path(f"{os.fspath(path)}.aux.xml")
    atomic_write_text(sidecar, "<PAMDataset>\n" + "".join(bands) + "</PAMDataset>\n")
    return sidecar
