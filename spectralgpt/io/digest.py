"""Content digests: the one way anything here decides that two inputs are the same.

A cached, skipped or resumed result is reused only when everything it was computed from is byte-for-byte the
same (DESIGN.md, "Reuse is earned by content"). These helpers turn that "everything" into SHA-256 hex digests:
of files, of arrays (dtype, shape and bytes), and of JSON-able settings in canonical form (sorted keys), so the
same content gives the same digest on every machine and in every process, and a path, a name or a count never
stands in for content.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

CHUNK = 1 << 22


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return _canonical(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def digest_json(value: Any) -> str:
    """SHA-256 of the canonical JSON of `value` (dicts with sorted keys; pydantic models dumped first)."""
    text = json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def update_array(h, a: np.ndarray | None) -> None:
    """Feed one array into hash `h`: its dtype and shape as well as its bytes (so (2, 3) != (3, 2))."""
    if a is None:
        h.update(b"none;")
        return
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape};".encode())
    h.update(memoryview(a).cast("B"))


def digest_arrays(arrays: Mapping[str, np.ndarray | None], meta: Any = None) -> str:
    """SHA-256 of named arrays (in name order) and optional JSON-able metadata."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(f"{name}=".encode())
        update_array(h, None if arrays[name] is None else np.asarray(arrays[name]))
    h.update(digest_json(meta).encode())
    return h.hexdigest()


def digest_list(digests: Iterable[str]) -> str:
    """SHA-256 of an ordered sequence of digests (a corpus, a split, a shard's inputs)."""
    h = hashlib.sha256()
    n = 0
    for d in digests:
        h.update(str(d).encode())
        h.update(b"\n")
        n += 1
    h.update(f"n={n}".encode())
    return h.hexdigest()


def changed(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two input records: ["corpus: 3f2a61c0 -> 9b1c07d2", ...]."""
    out = []
    for key in sorted(set(recorded) | set(current)):
        a, b = recorded.get(key), current.get(key)
        if a != b:
            out.append(f"{key}: {_short(a)} -> {_short(b)}")
    return out


def _short(v: Any) -> str:
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:12]
    if v is None:
        return "none"
    text = json.dumps(_canonical(v), sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
