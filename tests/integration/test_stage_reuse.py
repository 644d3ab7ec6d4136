"""Reuse is earned by content, on the real stages and shards: same inputs give bit-identical weights; a killed
pretraining resumes to the uninterrupted result; a change of pixels (same files, same count) or of the
pretrained weights is never answered with an old run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from safetensors.numpy import load_file

from spectralgpt.config import load_params
from spectralgpt.data.synthetic import generate_demo_corpus
from spectralgpt.stages.finetune import finetune
from spectralgpt.stages.ingest import ingest
from spectralgpt.stages.preprocess import preprocess_all
from spectralgpt.stages.pretrain import pretrain

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from pipeline_helpers import tiny_params, write_params  # noqa: E402

TASKS = ("classification", "multilabel", "segmentation", "change")


def weights(folder) -> dict:
    return load_file(str(Path(folder) / "model.safetensors"))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def rewrite_pixels(files, delta: int = 37) -> None:
    """New pixel values in the same files: same names, same count, same size."""
    for f in files:
        with rasterio.open(f) as src:
            profile, data, names = src.profile, src.read(), src.descriptions
        with rasterio.open(f, "w", **profile) as dst:
            dst.write(np.clip(data.astype(np.int64) + delta, 0, 10000).astype(data.dtype))
            dst.descriptions = names


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project folder (params.yaml, raw corpus, ingested and preprocessed), deterministic training."""
    root = tmp_path_factory.mktemp("project")
    p = tiny_params(f"sqlite:///{root}/mlflow.db", str(root / "mlartifacts"))
    p["ingest"]["workers"], p["preprocess"]["workers"] = 1, 1
    p["pretrain"]["train"].update(deterministic=True, amp="fp32", device="cpu", max_steps=4)
    for task in p["finetune"].values():
        task["train"].update(deterministic=True, amp="fp32", device="cpu")
    for key in ("raw", "interim", "shards"):
        p["data"][key] = str(root / p["data"][key])
    for src in p["data"]["sources"].values():
        src["root"] = str(root / src["root"])
    p["pretrain"]["shards"] = p["data"]["shards"]
    for task in p["finetune"].values():
        task["shards"] = p["data"]["shards"]
    write_params(root / "params.yaml", p)
    generate_demo_corpus(root / "data" / "raw", scale="tiny")
    params = load_params(root / "params.yaml")
    ingest(params)
    preprocess_all(params)
    return root


def _params(root: Path, **pretrain_train):
    p = load_params(root / "params.yaml")
    if pretrain_train:
        p.pretrain.train = p.pretrain.train.model_copy(update=pretrain_train)
    return p


def test_two_runs_from_scratch_give_bit_identical_weights(project, tmp_path):
    p = _params(project)
    for run in ("a", "b"):
        cfg = p.pretrain.model_copy(update={"out": str(tmp_path / run / "pretrain")})
        pretrain(cfg, work=tmp_path / run / "runs/pretrain", reports=tmp_path / run / "reports/pretrain")
        for task in TASKS:
            ft = p.finetune[task].model_copy(update={"pretrained": cfg.out, "out": str(tmp_path / run / task)})
            finetune(ft, work=tmp_path / run / "runs/finetune", reports=tmp_path / run / "reports")
    assert same(weights(tmp_path / "a/pretrain"), weights(tmp_path / "b/pretrain"))
    for task in TASKS:
        assert same(weights(tmp_path / "a" / task), weights(tmp_path / "b" / task)), task
    # the saved configs are byte-identical too: `dvc repro` from scratch gives the same md5s downstream
    assert (tmp_path / "a/pretrain/config.json").read_bytes() == (tmp_path / "b/pretrain/config.json").read_bytes()


def test_a_new_encoder_never_resumes_the_old_finetuning_run(project, tmp_path, caplog):
    p = _params(project)
    first = p.pretrain.model_copy(update={"out": str(tmp_path / "enc1")})
    pretrain(first, work=tmp_path / "runs/pretrain", reports=tmp_path / "reports/pretrain")
    ft = p.finetune["classification"].model_copy(update={"pretrained": first.out, "out": str(tmp_path / "cls")})
    old = finetune(ft, work=tmp_path / "runs/finetune", reports=tmp_path / "reports")
    again = finetune(ft, work=tmp_path / "runs/finetune", reports=tmp_path / "reports")  # same inputs: reused
    assert again.lineage == old.lineage and again.history == old.history
    before, encoder = weights(tmp_path / "cls"), weights(tmp_path / "enc1")
    # another encoder at the same path (other seed, same everything else)
    second = first.model_copy(update={"train": first.train.model_copy(update={"seed": 1})})
    pretrain(second, work=tmp_path / "runs/pretrain", reports=tmp_path / "reports/pretrain")
    assert not same(encoder, weights(tmp_path / "enc1"))
    with caplog.at_level("WARNING"):
        new = finetune(ft, work=tmp_path / "runs/finetune", reports=tmp_path / "reports")
    assert "computed from other inputs" in caplog.text and "pretrained:" in caplog.text
    assert new.history[0]["step"] == 1  # trained from the first step, not resumed
    assert new.lineage["pretrained_digest"] != old.lineage["pretrained_digest"]
    assert not same(before, weights(tmp_path / "cls"))
    saved = json.loads((tmp_path / "cls/config.json").read_text())["extra"]["lineage"]
    assert saved["pretrained_digest"] == new.lineage["pretrained_digest"]


def _pretrain_cmd(root: Path) -> list[str]:
    return [sys.executable, "-m", "spectralgpt.cli", "pretrain", "--params", str(root / "params.yaml")]


def test_sigkill_resume_matches_uninterrupted_and_new_pixels_restart(project, tmp_path):
    """The pretraining stage (the command a retrain's `dvc repro` runs) killed mid-way resumes to the
    uninterrupted run's weights; after the pixels change, its checkpoints are refused and it starts over."""
    root = tmp_path / "proj"
    shutil.copytree(project / "data/raw/pretrain", root / "data/raw/pretrain")  # this test changes pixels
    p = yaml.safe_load((project / "params.yaml").read_text())
    p["data"].update(raw=str(root / "data/raw"), interim=str(root / "data/interim"), shards=str(root / "data/shards"),
                     sources={"pretrain": {"kind": "folder", "root": str(root / "data/raw/pretrain")}})
    p["pretrain"].update(shards=p["data"]["shards"], stages=[{"name": "stage1", "img_size": 64, "epochs": 1}])
    p["pretrain"]["train"].update(max_steps=12, checkpoint_every=2)
    p["finetune"] = {}
    write_params(root / "params.yaml", p)
    params = load_params(root / "params.yaml")
    ingest(params)
    preprocess_all(params)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # uninterrupted reference, in its own folder
    ref = tmp_path / "ref"
    ref.mkdir()
    write_params(ref / "params.yaml", {**p, "pretrain": {**p["pretrain"], "out": str(ref / "models/pretrain")}})
    subprocess.run(_pretrain_cmd(ref), cwd=ref, env=env, check=True, capture_output=True, timeout=300)
    # killed after a few checkpoints, then the same command again
    proc = subprocess.Popen(_pretrain_cmd(root), cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    ckpts = root / "runs/pretrain/1-stage1/checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and not list(ckpts.glob("ckpt-0000000[4-9].pt")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert not (root / "models/pretrain/model.safetensors").exists(), "killed too late to test resuming"
    out = subprocess.run(_pretrain_cmd(root), cwd=root, env=env, check=True, capture_output=True, text=True,
                         timeout=300)
    assert "resumed from" in out.stderr
    assert same(weights(root / "models/pretrain"), weights(ref / "models/pretrain"))
    # same count, same files, new pixels: the corpus digest changes and the old run is refused
    old = weights(root / "models/pretrain")
    rewrite_pixels(sorted((root / "data/raw/pretrain").rglob("*.tif"))[:5])
    ingest(params, ["pretrain"])
    preprocess_all(params, ["pretrain"])
    out = subprocess.run(_pretrain_cmd(root), cwd=root, env=env, check=True, capture_output=True, text=True,
                         timeout=300)
    assert "computed from other inputs" in out.stderr and "corpus:" in out.stderr
    assert "resumed from" not in out.stderr
    assert not same(old, weights(root / "models/pretrain"))
