"""Training history on disk (JSON lines), consistent across kill-and-resume: rows logged after the checkpoint
a run resumes from are dropped, so the curve has no duplicated or orphaned steps."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from spectralgpt.io.atomic import atomic_write_text
from spectralgpt.training.engine import Callback


class History(Callback):
    def __init__(self, path: str | Path, **tags):
        self.path, self.tags = Path(path), tags

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def on_train_start(self, info: dict) -> None:
        keep = [r for r in self.rows() if r["step"] <= info["start_step"]]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def on_step(self, step: int, logs: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **self.tags, **logs}) + "\n")


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """Rows as CSV (the union of their keys), for `dvc plots`."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return Path(path)
