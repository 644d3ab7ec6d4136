"""DESIGN.md's layering, held by what a fresh interpreter actually imports: the library never imports Prefect or
DVC, and MLflow only through `spectralgpt.tracking`. It is also what lets a GPU machine with PyTorch, pydantic and
rasterio alone train, benchmark and predict (`benchmarks/gpu.sh`): the engine, the models and inference load no
MLflow, Prefect or DVC."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ORCHESTRATION = {"prefect", "prefect_dask", "dvc", "dvc_s3"}
# the tracking layer and what wires it to the library (the stages and the command line)
ABOVE = {"tracking", "stages", "cli"}


def imported_by_the_library_but(above: set[str]) -> set[str]:
    """Top-level names a fresh interpreter holds after importing every spectralgpt module outside the subpackages
    `above` (but those of an optional extra that is not installed)."""
    code = f"""
import importlib, json, pkgutil, sys
import spectralgpt
names = [m.name for m in pkgutil.iter_modules(spectralgpt.__path__, "spectralgpt.") if m.name.split(".")[1] not in {above!r}]
assert len(names) > 5, names
for name in names:
    module = importlib.import_module(name)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), name + "."):
        try:
            importlib.import_module(info.name)
        except ImportError as e:  # an optional extra that is not installed (timm, terratorch)
            missing = e if isinstance(e, ModuleNotFoundError) else e.__cause__
            if not isinstance(missing, ModuleNotFoundError) or (missing.name or "spectralgpt").startswith("spectralgpt"):
                raise
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_library_below_tracking_loads_no_mlflow_prefect_or_dvc():
    loaded = imported_by_the_library_but(ABOVE)
    assert "torch" in loaded and "rasterio" in loaded  # the walk did import the library
    assert not loaded & (ORCHESTRATION | {"mlflow"}), loaded & (ORCHESTRATION | {"mlflow"})


def test_no_library_module_imports_prefect_or_dvc():
    offenders = []
    for path in (ROOT / "spectralgpt").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ORCHESTRATION]
    assert not offenders, offenders
