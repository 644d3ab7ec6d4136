"""The content digest of a model: what "the same pretrained weights" means for reuse and lineage.

For our model folders it covers the weights file and the parts of config.json that change what the model
computes (architecture, band order, normalisation), not bookkeeping such as lineage; for a published
checkpoint file (``.pth``) it is the SHA-256 of the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from spectralgpt.io.digest import digest_json, sha256_file

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def model_digest(path: str | Path) -> str:
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    weights, config = path / WEIGHTS, path / CONFIG
    if not weights.is_file():
        raise FileNotFoundError(f"{path} is neither a checkpoint file nor a model folder (no {WEIGHTS})")
    meta = json.loads(config.read_text()) if config.is_file() else {}
    return digest_json({"weights": sha256_file(weights),
                        "config": {k: meta.get(k) for k in ("model", "bands", "normalization")}})
