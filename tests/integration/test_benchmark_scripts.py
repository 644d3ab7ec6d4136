"""The CPU benchmark scripts run end to end on tiny settings and print their side-by-side figures (a benchmark that
no longer runs is a claim nobody can check; no timing is asserted)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_train_step_prints_each_row_against_its_measured_peak_and_the_official_step():
    out = bench("train_step.py", "--configs", "mae_vit_tiny_patch8_64:2", "--steps", "1", "--rounds", "1")
    assert "measured GEMM peak: fp32" in out
    assert "official fp32" in out and "% of the fp32 peak" in out and "vs official" in out
    assert "failed" not in out


def test_train_step_profile_splits_each_rows_time_and_bounds_its_utilisation():
    out = bench("train_step.py", "--configs", "mae_vit_tiny_patch8_64:2", "--steps", "1", "--rounds", "1",
                "--bf16", "off", "--profile")
    for row in ("official fp32", "ours fp32"):
        assert f"{row}: one step by operator (self time)" in out
    assert out.count("of operator time go: GEMMs") == 2 and out.count("with everything else taking no time") == 2
    ours = out.split("ours fp32: one step by operator")[1]
    assert "attention" in ours and "% of the peak), optimizer" in ours  # flash attention has its own part


def test_train_step_compiled_rows_run():
    """torch.compile rows (Inductor builds C++ on a CPU): they once failed at their first timed step."""
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler for Inductor")
    out = bench("train_step.py", "--configs", "mae_vit_tiny_patch8_64:2", "--steps", "1", "--rounds", "1",
                "--bf16", "off", "--compile")
    assert "ours fp32 compiled" in out and "failed" not in out


def test_dense_step_compares_the_heads_dropout_with_torchs():
    out = bench("dense_step.py", "--steps", "1", "--batches", "2", "4")
    assert "(torch's nn.Dropout)" in out and "(ours)" in out and "dense_dropout 0.0" in out
    assert "aten::bernoulli_" in out and "aten::random_" in out


def test_attention_step_prints_every_kernel_against_the_flash_one():
    out = bench("attention_step.py", "--steps", "1", "--tokens", "64", "--heads", "2")
    assert "measured GEMM peak: float32" in out
    for row in ("flash kernel float32", "math kernel float32", "explicit softmax float32"):
        assert row in out
    assert "vs flash kernel float32" in out


def test_lanes_compares_one_process_with_two_sharing_the_cores():
    out = bench("lanes.py", "--steps", "1", "--batch", "2")
    assert "one stage at a time" in out and "two lanes, cores shared" in out and "oversubscribed" in out
    assert out.count("img/s") == 3


def test_predict_throughput_runs_every_model_on_one_scene():
    """Both default models predict the same scene: each writes its own outputs (predict refuses to overwrite one)."""
    out = bench("predict_throughput.py", "--size", "256", "--batch-size", "4", "--naive-tiles", "2")
    for name in ("seg_vit_tiny_patch8_64", "seg_vit_small_patch8_128"):
        assert f"{name} (tile " in out
    assert out.count("speed-up vs naive") == 2


def test_data_throughput_compares_per_file_reads_with_shards():
    out = bench("data_throughput.py", "--n", "32", "--workers", "1", "--batch", "8")
    assert "(b) shards + batched aug in the loader" in out and "(c)'s loader alone" in out and "ratio" in out


def test_pretrain_throughput_compares_the_real_run_with_the_model_only_step():
    out = bench("pretrain_throughput.py", "--model", "mae_vit_tiny_patch8_64", "--batch", "4", "--steps", "2",
                "--images", "32", "--workers", "1")
    assert "real run from shards" in out and "data loading costs" in out and "DDP: 1 process" in out


def test_dvc_scale_times_loose_files_against_tars(tmp_path):
    out = bench("dvc_scale.py", "--n", "100", "--members", "25", "--tmp", str(tmp_path))
    for op in ("| add |", "| status |", "| push |", "| listing |"):
        assert op in out
