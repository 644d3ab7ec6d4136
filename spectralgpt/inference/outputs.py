"""Checks on an output path, made before any compute: never replace an input, never replace an existing output
unless asked (`overwrite`), and fail at once on a folder or an unwritable location rather than after the work."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["OutputError", "check_output"]


class OutputError(ValueError):
    """An output path that cannot or must not be written."""


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def _writable_folder(path: Path) -> Path:
    """The nearest existing ancestor of `path` (the folder the output goes in, or the one it will be made in)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_output(output: str | os.PathLike, inputs=(), overwrite: bool = False) -> Path:
    """`output` as a Path when it may be written; `OutputError` naming the problem otherwise.

    inputs: paths read by the same command (scenes, band files; None entries are skipped). An output that is one
    of them (same real path or same file) is refused even with `overwrite`.
    """
    output = Path(output)
    for src in inputs:
        if src is not None and _same_file(os.fspath(output), os.fspath(src)):
            raise OutputError(f"output {output} is the input {src}; choose another output path")
    if output.is_dir():
        raise OutputError(f"output {output} is a folder; give a file name")
    if output.exists() and not overwrite:
        raise OutputError(f"output {output} already exists; pass --overwrite (overwrite=True) to replace it")
    folder = _writable_folder(output)
    if not folder.is_dir():
        raise OutputError(f"cannot write {output}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {output}: folder {folder} is not writable")
    return output
