"""Every stage's Prefect flow on the tiny configuration, through Prefect's test harness, tracked in a real
SQLite MLflow store: four registered task models, each promoted to champion."""

from pathlib import Path

import pytest
from pipeline_helpers import tiny_params, write_params

from flows.evaluate import evaluate_flow
from flows.finetune import finetune_flow
from flows.ingest import ingest_flow
from flows.preprocess import preprocess_flow
from flows.pretrain import pretrain_flow
from spectralgpt.config import TASKS
from spectralgpt.data.synthetic import generate_demo_corpus


@pytest.fixture(scope="module")
def tiny_run(prefect_api, tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("pipeline")
    before = Path.cwd()
    os.chdir(root)
    try:
        uri = f"sqlite:///{root}/mlflow.db"
        write_params(root / "params.yaml", tiny_params(uri, str(root / "mlartifacts")))
        generate_demo_corpus("data/raw", scale="tiny")
        out = {"ingest": ingest_flow("params.yaml"), "preprocess": preprocess_flow("params.yaml"),
               "pretrain": pretrain_flow("params.yaml")}
        for task in TASKS:
            out[f"finetune-{task}"] = finetune_flow(task, "params.yaml")
            out[f"evaluate-{task}"] = evaluate_flow(task, "params.yaml")
        yield root, uri, out
    finally:
        os.chdir(before)


def test_stage_outputs(tiny_run):
    root, _, out = tiny_run
    assert out["ingest"]["classification"]["n_good"] == 100
    parts = {k: v for k, v in out["preprocess"].items() if k.startswith("classification/")}
    assert set(parts) == {"classification/train", "classification/val", "classification/test"}
    assert sum(v["items"] for v in parts.values()) == 100  # one shard corpus per split
    assert (root / "models/pretrain/model.safetensors").exists()
    assert (root / "reports/pretrain/history.csv").exists() and (root / "reports/pretrain/reconstruction.png").exists()
    for task in TASKS:
        assert (root / f"models/{task}/config.json").exists()
        metrics = out[f"evaluate-{task}"]["metrics"]
        assert 0.0 <= metrics[metrics["primary_metric"]] <= 1.0
        assert (root / f"reports/{task}/metrics.json").exists() and (root / f"reports/{task}/per_class.csv").exists()


def test_registered_models_are_promoted_and_runs_tracked(tiny_run):
    from mlflow import MlflowClient

    from spectralgpt.tracking import list_models, promote

    _, uri, out = tiny_run
    for task in TASKS:
        assert out[f"evaluate-{task}"]["registered"]["name"] == f"spectralgpt-{task}"
        assert promote(task, uri=uri).promoted  # first challenger: nothing to beat
        assert not promote(task, uri=uri).promoted  # twice is harmless
    models = {m.name: m for m in list_models(uri=uri)}
    assert set(models) == {f"spectralgpt-{t}" for t in TASKS}
    assert all(m.champion is not None for m in models.values())
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("spectralgpt-test")
    runs = client.search_runs([exp.experiment_id])
    names = {r.info.run_name: r.info.status for r in runs}
    for stage in ["ingest", "preprocess", "pretrain", *(f"finetune-{t}" for t in TASKS)]:
        assert names.get(stage) == "FINISHED", stage
    pretrain = next(r for r in runs if r.info.run_name == "pretrain")
    assert "train.loss" in pretrain.data.metrics and pretrain.data.tags["spectralgpt.stage"] == "pretrain"


def test_flow_runs_recorded_in_prefect(tiny_run):
    import asyncio

    from prefect.client.orchestration import get_client

    async def names():
        async with get_client() as client:
            return [(r.name, r.state.type.value) for r in await client.read_flow_runs(limit=200)]

    runs = asyncio.run(names())
    assert ("finetune-segmentation", "COMPLETED") in runs and ("evaluate-change", "COMPLETED") in runs
