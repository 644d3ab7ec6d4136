"""Render `dvc plots` offline: every Vega-Lite plot to PNG (vl-convert, no CDN), image plots copied, and an
index.html that needs no network. `python -m flows.plots [--out reports/plots]`."""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from spectralgpt.io.atomic import atomic_write_bytes, atomic_write_text


def render(out: str | Path = "reports/plots") -> list[Path]:
    import vl_convert

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shown = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], check=True,
                           capture_output=True, text=True).stdout
    written = []
    for source, entries in json.loads(shown).get("data", {}).items():
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.removeprefix("reports/"))
        for entry in entries:
            if entry.get("type") == "vega":
                target = out / (name.replace(".", "_") + ".png")  # history_csv.png: no clash with images
                atomic_write_bytes(target, vl_convert.vegalite_to_png(entry["content"], scale=2))
            elif entry.get("type") == "image" and Path(entry.get("url", source)).exists():
                target = out / name
                shutil.copyfile(entry.get("url", source), target)
            else:
                continue
            written.append(target)
    cards = "\n".join(f'<figure><img src="{html.escape(p.name)}"><figcaption>{html.escape(p.stem)}</figcaption>'
                      f"</figure>" for p in written)
    atomic_write_text(out / "index.html", f"<!doctype html><meta charset=utf-8><title>SpectralGPT plots</title>"
                                          f"<style>img{{max-width:720px}}figure{{display:inline-block}}</style>"
                                          f"<h1>SpectralGPT pipeline plots</h1>\n{cards}\n")
    return written


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="reports/plots")
    for path in render(ap.parse_args().out):
        print(path)
