"""Run folders (``runs/``): where a training stage keeps its checkpoints, history and finished model between
invocations, and the rule that makes reusing them honest.

A run folder holds ``inputs.json``: the content digests the run is computed from. `open_run` hands the folder
back as it is when the inputs are the same (the run resumes or is reused); when they differ it logs what
changed, removes the stale folder and starts an empty one. `list_runs` shows every folder with its inputs, for
`spectralgpt runs`.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from spectralgpt.io.atomic import atomic_write_text
from spectralgpt.io.digest import changed, digest_json
from spectralgpt.training.distributed import barrier, is_main

log = logging.getLogger(__name__)
INPUTS = "inputs.json"
#: training settings that change how a run goes but not what it computes
NEUTRAL = {"progress", "num_workers", "log_every", "checkpoint_every", "keep_checkpoints", "device", "augment_on"}


def settings_digest(*parts) -> str:
    """Digest of the settings that determine a run's result (pydantic sections are dumped; NEUTRAL keys out)."""
    def clean(x):
        if hasattr(x, "model_dump"):
            x = x.model_dump(mode="json")
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in NEUTRAL}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return digest_json([clean(p) for p in parts])


def read_inputs(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / INPUTS).read_text())
    except (OSError, ValueError):
        return None


def open_run(folder: str | Path, inputs: dict) -> Path:
    """`folder` ready for a run computed from `inputs`: kept when it was made from the same inputs, else pruned
    (with a log line naming what changed) and started afresh. Under torchrun, rank 0 decides and the other ranks
    wait for it (they would otherwise race it removing and creating the folder)."""
    folder = Path(folder)
    if is_main():
        _open_run(folder, inputs)
    barrier()
    folder.mkdir(parents=True, exist_ok=True)  # a node whose disk is not rank 0's
    return folder


def _open_run(folder: Path, inputs: dict) -> None:
    recorded = read_inputs(folder)
    if folder.exists() and recorded != inputs:
        what = "; ".join(changed(recorded or {}, inputs)) if recorded else "no inputs recorded"
        log.warning("run folder %s was computed from other inputs (%s): not reused, removed", folder, what)
        shutil.rmtree(folder)
    if not folder.exists():
        folder.mkdir(parents=True)
        atomic_write_text(folder / INPUTS, json.dumps(inputs, indent=1, sort_keys=True) + "\n")


def list_runs(root: str | Path = "runs") -> list[dict]:
    """Every run folder under `root` with its recorded inputs and whether it holds a finished model."""
    out = []
    for inputs_file in sorted(Path(root).glob(f"**/{INPUTS}")):
        folder = inputs_file.parent
        out.append({"folder": str(folder), "inputs": read_inputs(folder),
                    "finished": (folder / "model" / "config.json").exists(),
                    "checkpoints": len(list((folder / "checkpoints").glob("ckpt-*.pt")))})
    return out
