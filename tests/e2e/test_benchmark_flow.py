"""The benchmark flow under Prefect's test harness: a profile's benchmark section (linear probe and k-NN on a
synthetic EuroSAT read in its own layout) over a tiny encoder, its table as a Prefect artifact, its scores in a real
SQLite MLflow store."""

import asyncio
from pathlib import Path

import torch
import yaml

from spectralgpt.data.normalize import MinMax
from spectralgpt.data.synthetic import generate
from spectralgpt.models import create_model, save_model

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_flow_runs_a_profile_and_records_it(prefect_api, tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client

    from flows.benchmark import benchmark_flow

    monkeypatch.chdir(tmp_path)
    generate("eurosat", "raw/eurosat", n=20, size=32)
    torch.manual_seed(0)
    save_model(create_model("mae_vit_tiny_patch8_64", img_size=32), "encoder", normalization=MinMax().to_dict())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    params["tracking"] = {"uri": uri, "artifacts": str(tmp_path / "mlartifacts"), "experiment": "bench-test"}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    Path("profile.yaml").write_text(yaml.safe_dump({"benchmark": {
        "name": "flow-test", "encoder": "encoder", "protocols": ["linear_probe", "knn"],
        "datasets": [{"name": "eurosat", "source": {"kind": "eurosat", "root": "raw/eurosat"}}],
        "linear_probe": {"epochs": 5, "batch_size": 8}, "knn": {"k": 3}}}))

    out = benchmark_flow("params.yaml", profile="profile.yaml")

    assert [(r["dataset"], r["protocol"]) for r in out["rows"]] == [("eurosat", "linear_probe"), ("eurosat", "knn")]
    probe = out["rows"][0]
    assert probe["history"][-1]["loss"] < probe["history"][0]["loss"]
    assert Path("reports/benchmark/flow-test.md").read_text().startswith("# Benchmark `flow-test`")

    async def recorded():
        async with get_client() as client:
            runs = [r for r in await client.read_flow_runs(limit=200) if r.name == "benchmark-params.yaml"]
            artifact = await client.read_latest_artifacts(limit=200)
            return runs, [a.key for a in artifact]

    runs, artifacts = asyncio.run(recorded())
    assert runs and runs[0].state.type.value == "COMPLETED"
    assert "benchmark-flow-test" in artifacts
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("bench-test").experiment_id])[0]
    assert run.info.run_name == "benchmark" and run.info.status == "FINISHED"
    assert run.data.metrics["eurosat.knn.overall_accuracy"] == out["rows"][1]["metrics"]["overall_accuracy"]
    assert run.data.params["name"] == "flow-test"
