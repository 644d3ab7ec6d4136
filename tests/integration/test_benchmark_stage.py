"""The benchmark stage on real files: synthetic EuroSAT, BigEarthNet and SegMunich GeoTIFFs in their public layouts
read by their readers, a tiny pretrained encoder, every protocol (linear probe, k-NN, UPerNet), the paper-shaped
table written and everything logged to a real SQLite MLflow store; then `spectralgpt benchmark` on the shard
corpora the first run stored."""
# ruff: noqa: F811  (pytest fixtures imported from tracking_helpers are redefined as arguments)

import json
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from tracking_helpers import empty_store_db, store  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from spectralgpt.config import BenchmarkConfig
from spectralgpt.data.normalize import MinMax
from spectralgpt.data.synthetic import generate
from spectralgpt.models import create_model, save_model

REPO = Path(__file__).resolve().parents[2]
SEG = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]  # the bands SegMunich ships
TRAIN = {"max_steps": 8, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0, "progress": False, "log_every": 1,
         "checkpoint_every": 100}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-raw")
    generate("eurosat", root / "eurosat", n=30, size=32)  # 18 train, 8 test images over 10 classes
    generate("bigearthnet", root / "bigearthnet", n=20, size=36)  # 15 train, 4 val patches
    generate("segmunich", root / "segmunich", n=6, size=32)  # 5 train, 1 test scene
    torch.manual_seed(0)
    save_model(create_model("mae_vit_tiny_patch8_64", img_size=32), root / "encoder", normalization=MinMax().to_dict())
    return root


def config(raw, tmp_path, **changes) -> BenchmarkConfig:
    return BenchmarkConfig(**{
        "name": "tiny", "encoder": str(raw / "encoder"), "protocols": ["linear_probe", "knn", "upernet"],
        "datasets": [{"name": "eurosat", "source": {"kind": "eurosat", "root": str(raw / "eurosat")}},
                     {"name": "ben", "source": {"kind": "bigearthnet", "root": str(raw / "bigearthnet")},
                      "test_split": "val"},
                     {"name": "seg", "source": {"kind": "segmunich", "root": str(raw / "segmunich"), "bands": SEG},
                      "task": "segmentation", "fill": "nearest"}],  # SegMunich's 10 bands mapped onto the 12
        "linear_probe": {"epochs": 12, "batch_size": 8}, "knn": {"k": 5},
        "upernet": {"train": TRAIN, "channels": 16, "eval_batch_size": 4},
        "work": str(tmp_path / "work"), "out": str(tmp_path / "reports"), **changes})


def test_every_protocol_runs_writes_the_table_and_logs_to_mlflow(raw, tmp_path, store):
    from spectralgpt.stages.benchmark import benchmark
    from spectralgpt.tracking import stage_run

    cfg = config(raw, tmp_path)
    with stage_run("benchmark", cfg.model_dump(mode="json"), uri=store, log_system_metrics=False) as run:
        result = benchmark(cfg, run)
    got = {(r.dataset, r.protocol): r for r in result.rows}
    assert set(got) == {("eurosat", "linear_probe"), ("eurosat", "knn"), ("ben", "linear_probe"), ("ben", "knn"),
                        ("seg", "upernet")}
    assert {r.task for r in result.rows} == {"classification", "multilabel", "segmentation"}  # from the labels
    for r in result.rows:
        assert 0.0 <= r.metrics[r.primary_metric] <= 1.0
    for key in (("eurosat", "linear_probe"), ("ben", "linear_probe"), ("seg", "upernet")):  # the losses fall
        curve = [h["loss"] for h in got[key].history]
        assert len(curve) >= 8 and curve[-1] < curve[0], (key, curve)
    assert got[("eurosat", "knn")].history == [] and got[("eurosat", "knn")].test_items == 8
    assert got[("seg", "upernet")].settings["feature_layers"] == [0, 1, 2, 3]  # 3, 5, 7, 11 scaled to 4 blocks
    assert got[("seg", "upernet")].settings["frozen_parameters"] > 0
    mapping = got[("seg", "upernet")].settings["band_mapping"]
    assert "B1<-B2 (nearest)" in mapping and "B9<-B8A (nearest)" in mapping and "B4<-B4" in mapping
    assert got[("eurosat", "knn")].settings["band_mapping"] is None  # the encoder's own 12 bands
    saved = json.loads((tmp_path / "work/tiny/seg/upernet/model/config.json").read_text())
    assert saved["normalization"]["band_mapping"]["input_bands"] == SEG  # evaluation and predict map alike

    table = result.markdown.read_text()
    assert "| dataset | protocol | task | OA | mAP | mIoU | F1 | train | test |" in table
    assert "| eurosat | linear probe (12 epochs) | classification | **" in table
    assert "| seg | UPerNet (layers 0, 1, 2, 3; frozen) | segmentation |" in table
    report = json.loads(result.json.read_text())
    assert report["encoder_digest"] == result.encoder_digest
    assert report["results"]["ben"]["knn"]["mAP"] == got[("ben", "knn")].metrics["micro_map"]
    assert report["results"]["seg"]["upernet"]["last_loss"] < report["results"]["seg"]["upernet"]["first_loss"]
    assert (tmp_path / "reports/tiny/seg-upernet/metrics.json").exists()  # the evaluation stage's own report

    client = MlflowClient(store)
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    metrics = logged.data.metrics
    assert metrics["eurosat.linear_probe.overall_accuracy"] == got[("eurosat", "linear_probe")].metrics[
        "overall_accuracy"]
    assert {"ben.knn.micro_map", "seg.upernet.miou", "eurosat.knn.macro_f1"} <= set(metrics)
    curve = client.get_metric_history(run.run_id, "eurosat.linear_probe.train_loss")
    assert [m.step for m in curve] == list(range(1, 13))
    assert logged.data.tags["spectralgpt.encoder_digest"] == result.encoder_digest
    assert {a.path for a in client.list_artifacts(run.run_id, "benchmark")} == {"benchmark/tiny.md",
                                                                                 "benchmark/tiny.json"}

    assert (tmp_path / "work/tiny/seg/upernet/model/config.json").exists()  # the run folder keeps the model


def test_the_command_benchmarks_stored_shards(raw, tmp_path):
    from spectralgpt.cli import app
    from spectralgpt.stages.benchmark import benchmark

    benchmark(config(raw, tmp_path, protocols=["knn"], datasets=[config(raw, tmp_path).datasets[0]]))
    shards = tmp_path / "work/tiny/data/eurosat"  # what the raw source was stored as
    assert (shards / "train/manifest.json").exists() and (shards / "test/manifest.json").exists()
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    out = CliRunner().invoke(app, [
        "benchmark", "--params", str(params), "--no-track", "--protocol", "knn", "--protocol", "linear_probe",
        "--set", f"benchmark.encoder={raw / 'encoder'}", "--set", f"benchmark.out={tmp_path / 'cli'}",
        "--set", f"benchmark.work={tmp_path / 'cli-work'}", "--set", "benchmark.linear_probe.epochs=3",
        "--set", f"benchmark.datasets=[{{name: eurosat, shards: {shards}}}]"])
    assert out.exit_code == 0, out.output
    assert "| eurosat | k-NN (k=20, T=0.07) | classification |" in out.output
    assert json.loads((tmp_path / "cli/demo.json").read_text())["results"]["eurosat"].keys() == {"linear_probe",
                                                                                                "knn"}
    bad = CliRunner().invoke(app, ["benchmark", "--params", str(params), "--no-track", "--protocol", "upernet",
                                   "--set", f"benchmark.encoder={raw / 'encoder'}",
                                   "--set", f"benchmark.datasets=[{{name: eurosat, shards: {shards}}}]"])
    assert bad.exit_code == 2 and "none of the protocols ['upernet'] applies" in bad.output
