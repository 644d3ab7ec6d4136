"""Wall and CPU seconds of the demo's steps and of every pipeline stage it runs (wiring: no math).

The demo's own steps are timed with :class:`Stopwatch` (CPU: this process plus the child processes it waited
for). The DVC stages run in processes that `dvc repro` starts; each `python -m flows.<stage>` appends one JSON line
(stage, wall seconds since the process started, CPU seconds of the process and its children, its
``OMP_NUM_THREADS`` when a lane set one) to the file named
by ``SPECTRALGPT_STAGE_TIMES`` when it exits (:func:`record_at_exit`, called from ``flows/__init__.py``), so the
demo can print one table of where the time went.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STAGE_TIMES_ENV = "SPECTRALGPT_STAGE_TIMES"


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of the children it has waited for."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _process_start() -> float:
    """When this process started (epoch seconds); the import of this module when psutil cannot say."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - timing must never break a stage
        return time.time()


def stage_name(argv: list[str]) -> str:
    """The DVC stage name of a `python -m flows.<stage> [--task T]` command line: `finetune@multilabel`."""
    name = Path(argv[0]).stem if argv else "?"
    if "--task" in argv[:-1]:
        name += "@" + argv[argv.index("--task") + 1]
    return name


def record_at_exit() -> None:
    """When ``SPECTRALGPT_STAGE_TIMES`` names a file, append this process' stage, wall and CPU seconds to it at
    exit."""
    path = os.environ.get(STAGE_TIMES_ENV)
    if not path:
        return
    start = _process_start()

    def write() -> None:
        row = {"stage": stage_name(sys.argv), "wall_s": round(time.time() - start, 2),
               "cpu_s": round(cpu_seconds(), 2), "end": time.time(), "threads": os.environ.get("OMP_NUM_THREADS")}
        try:
            with open(path, "a", encoding="utf-8") as f:  # one short line per stage: an append is atomic enough
                f.write(json.dumps(row) + "\n")
        except OSError:
            pass

    atexit.register(write)


def read_stage_times(path: str | os.PathLike) -> list[dict]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def busy_seconds(rows: list[dict]) -> float:
    """Wall seconds during which at least one of the stages in `rows` ran (stages in parallel lanes overlap)."""
    spans = sorted((r["end"] - r["wall_s"], r["end"]) for r in rows)
    total, reach = 0.0, float("-inf")
    for start, end in spans:
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total


@dataclass
class Step:
    name: str
    wall_s: float
    cpu_s: float


class Stopwatch:
    """``with watch("synth"):`` records a step's wall and CPU seconds; :meth:`table` prints them all."""

    def __init__(self):
        self.steps: list[Step] = []
        self._t0, self._c0 = time.perf_counter(), cpu_seconds()

    def __call__(self, name: str):
        return _Lap(self, name)

    def add(self, name: str, wall_s: float, cpu_s: float) -> None:
        self.steps.append(Step(name, wall_s, cpu_s))

    def table(self) -> str:
        """Stage, wall seconds, CPU seconds, and the demo's total (its own wall clock, CPU of all processes)."""
        rows = [(s.name, s.wall_s, s.cpu_s) for s in self.steps]
        rows.append(("total", time.perf_counter() - self._t0, cpu_seconds() - self._c0))
        width = max(len(r[0]) for r in rows)
        lines = [f"{'stage':<{width}}  {'wall s':>8}  {'CPU s':>8}", f"{'-' * width}  {'-' * 8}  {'-' * 8}"]
        for i, (name, wall, cpu) in enumerate(rows):
            if i == len(rows) - 1:
                lines.append(f"{'-' * width}  {'-' * 8}  {'-' * 8}")
            lines.append(f"{name:<{width}}  {wall:8.1f}  {cpu:8.1f}")
        return "\n".join(lines)


class _Lap:
    def __init__(self, watch: Stopwatch, name: str):
        self.watch, self.name = watch, name

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.watch.add(self.name, time.perf_counter() - self.t0, cpu_seconds() - self.c0)
        return False
