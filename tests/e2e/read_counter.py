"""A real file-access counter: rasterio's dataset open and pixel read, wrapped so that every call still goes
through to GDAL and is also written as one line (``open|read <TAB> path``) to a log file. Installed in this
process and, with ``client.run(install, log)``, in every worker of a Dask cluster."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import rasterio
import rasterio.io

_STATE: dict = {"log": None, "orig": None}


def _note(kind: str, path) -> None:
    log = _STATE["log"]
    if log:
        with open(log, "a", encoding="utf-8") as f:  # one short O_APPEND write per call: safe across processes
            f.write(f"{kind}\t{os.path.abspath(str(path))}\n")


def install(log: str | os.PathLike) -> int:
    """Count from now on into `log` (another call moves the count to another log). Returns the process id."""
    _STATE["log"] = str(log)
    if _STATE["orig"] is None:
        orig_open, orig_read = rasterio.open, rasterio.io.DatasetReader.read

        def counted_open(fp, mode="r", *args, **kwargs):
            ds = orig_open(fp, mode, *args, **kwargs)
            if mode == "r":
                _note("open", ds.name)
            return ds

        def counted_read(self, *args, **kwargs):
            _note("read", self.name)
            return orig_read(self, *args, **kwargs)

        _STATE["orig"] = (orig_open, orig_read)
        rasterio.open, rasterio.io.DatasetReader.read = counted_open, counted_read
    return os.getpid()


def uninstall() -> None:
    if _STATE["orig"] is not None:
        rasterio.open, rasterio.io.DatasetReader.read = _STATE["orig"]
    _STATE.update(log=None, orig=None)


def counts(log: str | os.PathLike, kind: str = "read") -> collections.Counter:
    """How many times each path was opened / had its pixels read, from the log."""
    path = Path(log)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return collections.Counter(p for k, p in (ln.split("\t", 1) for ln in lines) if k == kind)
