"""A stage process (`python -m flows.<stage>`, as dvc.yaml runs each stage) loads its libraries with the cyclic
garbage collector paused and then frozen out of it; any other process is left alone."""

import gc
import re
import subprocess
import sys
from pathlib import Path

import yaml

import flows

ROOT = Path(__file__).resolve().parents[2]


def test_the_module_a_command_line_runs():
    assert flows.main_module(["python", "-m", "flows.finetune", "--task", "change"]) == "flows.finetune"
    assert flows.main_module(["python", "-X", "importtime", "-m", "flows.ingest"]) == "flows.ingest"
    assert flows.main_module(["python", "-c", "print()"]) is None
    assert flows.main_module(["pytest", "-m"]) is None and flows.main_module([]) is None


def test_every_dvc_stage_command_is_a_stage_module():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    commands = [s["cmd"] if "cmd" in s else s["do"]["cmd"] for s in stages.values()]
    modules = {re.search(r"-m (flows\.\w+)", c).group(1) for c in commands}
    assert modules and modules <= flows.STAGE_MODULES, modules - flows.STAGE_MODULES


def test_only_a_stage_process_freezes_its_imports():
    frozen = gc.get_freeze_count()
    flows.load_stage_imports(["python", "-m", "flows.demo"])  # the demo's own process: not a stage
    flows.load_stage_imports(["python", "-m", "pytest"])
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    try:
        flows.load_stage_imports(["python", "-m", "flows.finetune", "--task", "change"])
        assert gc.isenabled() and gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


def test_a_fresh_stage_process_starts_with_the_collector_running_and_its_libraries_frozen():
    report = "import gc; print(gc.isenabled(), gc.get_freeze_count() > 100_000, 'flows.common' in sys.modules)"
    for argv, expected in ((["-m", "flows.evaluate"], "True True True"), (["-c", "print()"], "True False False")):
        code = f"import sys; sys.orig_argv = [sys.executable, *{argv!r}]; import flows; {report}"
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        assert out.stdout.split() == expected.split(), (argv, out.stdout, out.stderr)
    help_text = subprocess.run([sys.executable, "-m", "flows.evaluate", "--help"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout
    assert "--task" in help_text  # a real stage command line still parses its arguments and exits cleanly
