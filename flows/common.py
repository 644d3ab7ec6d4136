"""What every stage flow shares: parameters from params.yaml, the MLflow stage run, a command line."""

from __future__ import annotations

import argparse
import contextlib
import sys
import urllib.request
from pathlib import Path

from spectralgpt.config import TASKS, Params, load_params
from spectralgpt.tracking import stage_run


def parse_args(description: str, task: bool = False) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--params", default="params.yaml", help="pipeline parameters (default: params.yaml)")
    if task:
        ap.add_argument("--task", required=True, choices=TASKS)
    return ap.parse_args()


def params(path: str | Path = "params.yaml") -> Params:
    return load_params(path)


@contextlib.contextmanager
def tracked(p: Params, stage: str, section, tags: dict | None = None):
    """The stage's MLflow run (nested under the pipeline run when there is one), with its params section."""
    t = p.tracking
    dump = section.model_dump(mode="json") if hasattr(section, "model_dump") else section
    with stage_run(stage, dump, tags, uri=t.uri, experiment=t.experiment, artifacts=t.artifacts) as run:
        yield run


def files(*patterns: str, root: str | Path = ".") -> list[Path]:
    out: list[Path] = []
    for pattern in patterns:
        out += sorted(Path(root).glob(pattern))
    return out


def check_prefect(timeout: float = 5.0) -> str | None:
    """A configured Prefect API must answer before any work starts; without one Prefect starts a temporary
    local server itself."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return None
    try:
        urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout).close()
    except OSError as e:
        sys.exit(f"error: the Prefect API at {url} is unreachable ({getattr(e, 'reason', e)}). Start it with "
                 "`prefect server start`, or unset PREFECT_API_URL to let Prefect run a temporary local server.")
    return url
