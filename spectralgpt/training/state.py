"""Training checkpoints: model, optimizer, scaler, RNG states and the position in the data order, written
atomically; a corrupt or partial newest checkpoint falls back to the previous one."""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

import numpy as np
import torch

from spectralgpt.io.atomic import atomic_path

log = logging.getLogger(__name__)
PATTERN = re.compile(r"^ckpt-(\d{8})\.pt$")


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state["numpy"] = {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss,
                      "gauss": gauss}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files, newest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if PATTERN.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def step_of(path: Path) -> int:
    return int(PATTERN.match(path.name).group(1))


def save(directory: Path, step: int, state: dict, keep: int) -> Path:
    """Write checkpoint `step` atomically, then prune: the one just written and the `keep` - 1 newest older
    ones stay. Files of later steps are left alone: they are either unreadable (set aside at load) or another
    run's, and pruning must never delete the checkpoint it just wrote because a newer name exists."""
    path = directory / f"ckpt-{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    older = [p for p in checkpoints(directory) if step_of(p) < step]
    for old in older[max(keep - 1, 0):]:
        old.unlink(missing_ok=True)
    return path


def load_latest(directory: Path, inputs: dict | None = None) -> tuple[dict, Path] | None:
    """The newest readable checkpoint computed from `inputs` (when given).

    An unreadable one is set aside as ``<name>.corrupt`` (kept for inspection, never deleted) and the previous
    one is tried. Checkpoints recorded with other inputs are refused with a warning naming what changed, and
    removed: the run starts fresh, and a stale checkpoint can never be resumed later by mistake."""
    from spectralgpt.io.digest import changed

    stale = []
    for path in checkpoints(directory):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not {"model", "optimizer", "micro_step"} <= set(state):
                raise ValueError("missing entries")
        except Exception as e:  # noqa: BLE001 - any unreadable file means: try the previous one
            log.warning("checkpoint %s is unreadable (%s); set aside as %s.corrupt, falling back to the previous "
                        "one", path, e, path.name)
            path.replace(path.with_name(path.name + ".corrupt"))
            continue
        if inputs is not None and state.get("inputs") != inputs:
            what = "; ".join(changed(state.get("inputs") or {}, inputs))
            log.warning("refusing to resume %s: it was computed from other inputs (%s); training starts fresh",
                        path, what)
            stale.append(path)
            continue
        for old in stale:
            old.unlink(missing_ok=True)
        return state, path
    for old in stale:
        old.unlink(missing_ok=True)
    return None
