"""`resolve_model(uri)`: a model reference -> the local folder holding config.json + model.safetensors.

Accepts a local folder (or its config.json), and MLflow URIs (``models:/name@alias``, ``models:/name/3``,
``runs:/<run id>/path``), which `spectralgpt.tracking.download` fetches (MLflow is imported only there, and only
when such a URI is given).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

CONFIG = "config.json"
MLFLOW_SCHEMES = ("models:/", "runs:/")


def find_model_folder(root: str | Path) -> Path:
    """The one folder under `root` (itself included) that holds a SpectralGPT config.json."""
    root = Path(root)
    if (root / CONFIG).is_file():
        return root
    found = sorted(p.parent for p in root.rglob(CONFIG))
    if not found:
        raise FileNotFoundError(f"no model folder ({CONFIG} + model.safetensors) under {root}")
    if len(found) > 1:
        raise ValueError(f"{len(found)} model folders under {root}: {', '.join(map(str, found[:5]))}; "
                         "point at one of them")
    return found[0]


def resolve_model(uri: str | Path) -> Path:
    """Local model folder for `uri`: a folder (or its config.json), or a models:/ or runs:/ MLflow URI."""
    s = str(uri)
    if s.startswith(MLFLOW_SCHEMES):
        from spectralgpt.tracking import download

        log.info("downloading %s", s)
        return find_model_folder(download(s))
    path = Path(s).expanduser()
    if path.is_file() and path.name == CONFIG:
        path = path.parent
    if not path.exists():
        raise FileNotFoundError(f"model {s} not found: expected a model folder or a models:/ or runs:/ URI")
    return find_model_folder(path)
