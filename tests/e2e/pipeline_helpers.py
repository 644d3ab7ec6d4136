"""A tiny pipeline configuration (a few optimizer steps per stage) and a project copy for DVC runs."""

import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TRAIN = {"max_steps": 3, "batch_size": 8, "blr": 1.0e-2, "warmup_epochs": 0, "checkpoint_every": 2,
         "progress": False, "log_every": 1}


def tiny_params(tracking_uri: str, artifacts: str) -> dict:
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["data"]["synthetic"]["scale"] = "tiny"
    p["preprocess"]["sizes"] = {"pretrain": 64, "classification": 64, "multilabel": 64, "change": 64,
                                "segmentation": 64}
    p["preprocess"]["fits"] = {"multilabel": "resize"}
    p["pretrain"]["stages"] = [{"name": "stage1", "img_size": 32, "epochs": 1}, {"name": "stage2", "img_size": 64, "epochs": 1}]
    p["pretrain"]["train"] = dict(TRAIN)
    p["pretrain"]["figures_every"] = 0
    for task in p["finetune"].values():
        task["train"] = {**TRAIN, "layer_decay": 0.75} if task["task"] in ("classification", "multilabel") else dict(TRAIN)
    p["finetune"]["change"]["train"]["batch_size"] = 4  # the tiny OSCD: 4 training tiles besides the held-out scene
    p["tracking"] = {"uri": tracking_uri, "artifacts": artifacts, "experiment": "spectralgpt-test"}
    return p


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def project_copy(dst: Path) -> Path:
    """The files a pipeline run needs (code, flows, dvc.yaml, DVC config), without data or outputs."""
    for name in ("spectralgpt", "flows"):
        shutil.copytree(REPO / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copyfile(REPO / name, dst / name)
    return dst
