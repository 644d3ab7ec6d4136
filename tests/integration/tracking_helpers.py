"""Shared fixtures for the tracking tests: a real SQLite MLflow store in a temporary folder, tiny models."""

import os
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from spectralgpt.models import create_model, save_model

MINMAX = {"name": "minmax", "eps": 1e-10}
TASK_MODELS = {"classification": ("vit_tiny_patch8_64", ["forest", "river", "city"]),
               "segmentation": ("seg_vit_tiny_patch8_64", [f"c{i}" for i in range(4)]),
               "change": ("cd_vit_tiny_patch8_64", ["no_change", "change"])}


@pytest.fixture(scope="session")
def empty_store_db(tmp_path_factory) -> Path:
    """An empty MLflow database, migrated once per session (creating the schema takes seconds). Created from its
    own folder: the Default experiment's artifact location is ./mlruns of the folder the store was created in,
    which must never be the repository."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        MlflowClient(f"sqlite:///{path}").search_experiments(max_results=1)
    finally:
        os.chdir(cwd)
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, empty_store_db) -> str:
    """A fresh SQLite tracking + registry store under tmp_path (artifacts there too); the current URI."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(empty_store_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("SPECTRALGPT_PARENT_RUN_ID", raising=False)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(before)


def tiny_model_dir(folder: Path, task: str = "classification", seed: int = 0) -> Path:
    name, classes = TASK_MODELS[task]
    torch.manual_seed(seed)
    model = create_model(name, num_classes=len(classes), depth=1)
    return save_model(model, folder, normalization=MINMAX, extra={"task": task, "class_names": classes})


def reflectance(n: int, bands: int = 12, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10000, size=(n, bands, size, size)).astype(np.float32)
