"""Validation while fine-tuning: the saved model is the best validation step's (not the last), early stopping
ends a run after `patience` validations, a validated run killed with SIGKILL resumes to the uninterrupted result,
and validation-chosen multi-label thresholds are the ones evaluation, Predictor and the pyfunc apply."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from spectralgpt.config import (DataConfig, FinetuneConfig, IngestConfig, Params, PreprocessConfig, PretrainConfig,
                                PretrainStage, SourceConfig)
from spectralgpt.data.synthetic import generate_demo_corpus
from spectralgpt.evaluation.evaluate import evaluate
from spectralgpt.models import create_model
from spectralgpt.stages import finetune as finetune_stage
from spectralgpt.stages.ingest import ingest
from spectralgpt.stages.preprocess import preprocess_all
from spectralgpt.training import TrainConfig, fit
from spectralgpt.training.validation import Validation
from tests.scripts.train_tiny import Images

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "scripts" / "finetune_tiny.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
       "OMP_NUM_THREADS": "1"}
TRAIN = dict(batch_size=8, lr=1e-3, warmup_epochs=0, log_every=1, progress=False, seed=7, device="cpu", amp="fp32",
             checkpoint_every=1, keep_checkpoints=100)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    generate_demo_corpus(root / "raw", scale="tiny")
    sources = {"classification": SourceConfig(kind="eurosat", root=str(root / "raw/eurosat")),
               "multilabel": SourceConfig(kind="bigearthnet", root=str(root / "raw/bigearthnet"))}
    params = Params(data=DataConfig(raw=str(root / "raw"), interim=str(root / "interim"), shards=str(root / "shards"),
                                    sources=sources),
                    ingest=IngestConfig(workers=1), preprocess=PreprocessConfig(size=64, workers=1),
                    pretrain=PretrainConfig(stages=[PretrainStage(name="s", img_size=64, epochs=1)]))
    ingest(params)
    preprocess_all(params)
    return root / "shards"


def scripted(scores):
    """An evaluate function that reports `scores` in turn (and draws from torch's RNG, which must not matter)."""
    it = iter(scores)

    def evaluate_fn(model):
        torch.rand(100)
        return {"score": next(it)}

    return evaluate_fn


def classifier_fit(out, validation=None, steps=10):
    torch.manual_seed(0)
    model = create_model("vit_tiny_patch8_64", img_size=32, num_classes=4, drop_path_rate=0.1)  # draws RNG

    def step(m, b):
        return torch.nn.functional.cross_entropy(m(b["image"]), b["label"]), {}

    result = fit(model, step, Images(), TrainConfig(max_steps=steps, **TRAIN), out, validation=validation)
    return model, result


def checkpoint_weights(out, step):
    return torch.load(Path(out) / "checkpoints" / f"ckpt-{step:08d}.pt", weights_only=True)["model"]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k].cpu(), b[k].cpu()), k


def test_the_kept_weights_are_the_best_validation_steps_and_validation_leaves_training_alone(tmp_path):
    v = Validation(scripted([0.1, 0.5, 0.3, 0.2, 0.4]), "score", every_steps=2)
    model, result = classifier_fit(tmp_path / "val", v)
    assert result.validation["best_step"] == 4 and result.validation["best_val"] == 0.5
    assert [r["step"] for r in result.validation["history"]] == [2, 4, 6, 8, 10]
    assert_same(model.state_dict(), checkpoint_weights(tmp_path / "val", 4))  # the best, not the last
    last = checkpoint_weights(tmp_path / "val", 10)
    assert any(not torch.equal(last[k], v) for k, v in model.state_dict().items())
    # the training stream is the one an unvalidated run follows
    _, plain = classifier_fit(tmp_path / "plain")
    assert plain.validation is None
    assert_same(last, checkpoint_weights(tmp_path / "plain", 10))
    # select: last keeps the final weights
    model, _ = classifier_fit(tmp_path / "last", Validation(scripted([0.1, 0.5, 0.3, 0.2, 0.4]), "score",
                                                            every_steps=2, select="last"))
    assert_same(model.state_dict(), last)


def test_early_stopping_ends_the_run_after_patience_validations_and_stays_stopped(tmp_path):
    v = Validation(scripted([0.5, 0.5, 0.55, 0.1]), "score", every_steps=2, patience=2, min_delta=0.1)
    _, result = classifier_fit(tmp_path, v, steps=20)
    assert result.steps == 6 and result.validation["stopped_early"]  # 0.5 at 2, then two without +0.1
    assert result.validation["best_step"] == 2 and len(result.validation["history"]) == 3
    assert (tmp_path / "checkpoints" / "ckpt-00000006.pt").exists()
    assert not (tmp_path / "checkpoints" / "ckpt-00000007.pt").exists()
    # the same command again resumes a stopped run: no training, no validation (the scores are used up)
    _, again = classifier_fit(tmp_path, Validation(scripted([]), "score", every_steps=2, patience=2, min_delta=0.1),
                              steps=20)
    assert again.steps == 6 and again.validation["best_step"] == 2


def test_the_stage_saves_the_best_step_and_records_it(shards, tmp_path, monkeypatch):
    scores = iter([0.2, 0.6, 0.4, 0.3])
    monkeypatch.setattr(finetune_stage, "validate", lambda *a, **k: {"overall_accuracy": next(scores)})
    cfg = FinetuneConfig(task="classification", model="vit_tiny_patch8_64", mode="scratch", shards=str(shards),
                         out=str(tmp_path / "model"), validate={"every_steps": 2}, train={**TRAIN, "max_steps": 8})
    result = finetune_stage.finetune(cfg, work=tmp_path / "runs", reports=tmp_path / "reports")
    assert result.metrics["best_step"] == 4 and result.metrics["val_metric"] == "overall_accuracy"
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert_same(saved, checkpoint_weights(tmp_path / "runs" / "classification", 4))
    extra = json.loads((tmp_path / "model" / "config.json").read_text())["extra"]
    assert (extra["val_metric"], extra["best_val"], extra["best_step"]) == ("overall_accuracy", 0.6, 4)
    report = json.loads((tmp_path / "reports/classification/train_metrics.json").read_text())
    assert (report["val_metric"], report["best_val"], report["best_step"]) == ("overall_accuracy", 0.6, 4)
    rows = pd.read_csv(tmp_path / "reports/classification/val_history.csv")
    assert rows["step"].tolist() == [2, 4, 6, 8] and rows["best"].tolist() == [True, True, False, False]


def test_sigkill_during_validated_finetuning_then_rerun_gives_the_same_model_and_best_step(shards, tmp_path):
    whole = tmp_path / "whole"
    subprocess.run([sys.executable, str(SCRIPT), str(shards), str(whole)], env=ENV, check=True, timeout=600,
                   capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(shards), str(out), "--slow", "0.5"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = out / "runs" / "classification" / "checkpoints"
    deadline = time.time() + 300
    while not (ckpts / "ckpt-00000008.pt").exists():  # after validations at steps 3 and 6, before 9 and 12
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model").exists() and not (ckpts / "ckpt-00000012.pt").exists()
    subprocess.run([sys.executable, str(SCRIPT), str(shards), str(out)], env=ENV, check=True, timeout=600,
                   capture_output=True)  # the same command again
    assert (out / "model/model.safetensors").read_bytes() == (whole / "model/model.safetensors").read_bytes()
    metrics = [json.loads((d / "reports/classification/train_metrics.json").read_text()) for d in (whole, out)]
    assert metrics[0]["best_step"] == metrics[1]["best_step"] is not None
    assert metrics[0]["best_val"] == metrics[1]["best_val"]
    history = [(d / "reports/classification/val_history.csv").read_text() for d in (whole, out)]
    assert history[0] == history[1] and len(history[0].splitlines()) == 5  # header + steps 3, 6, 9, 12


@pytest.mark.slow
def test_validated_two_process_ddp_run_validates_and_selects_as_one_process(shards, tmp_path):
    """torchrun, 2 processes x batch 4 (gloo): each rank trains on half of every epoch (the epochs of the
    validations are one process' with batch 8), every step and validation is recorded once, and rank 0 saves
    the weights of the best validation step: they score exactly `best_val` on the validation split.
    (Augmentation and drop-path draw per-rank streams, so the weights are not one process' bit for bit.)"""
    one, ddp = tmp_path / "one", tmp_path / "ddp"
    subprocess.run([sys.executable, str(SCRIPT), str(shards), str(one)], env=ENV, check=True, timeout=600,
                   capture_output=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(SCRIPT),
           str(shards), str(ddp), "--batch", "4"]
    done = subprocess.run(cmd, env=ENV, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, "\n".join(line for line in done.stderr.splitlines() if "Error" in line)[-3000:]
    reports = [d / "reports/classification" for d in (one, ddp)]
    history = [pd.read_csv(r / "val_history.csv") for r in reports]
    assert list(history[1]["step"]) == [3, 6, 9, 12]
    # each rank sees half of every epoch (up to the last batch's padding/drop: 79 samples make 10 batches of 4
    # per rank, 9 of 8 in one process); unsharded ranks would be at half these epochs
    np.testing.assert_allclose(history[1]["epoch"], history[0]["epoch"], rtol=0.15)
    assert list(pd.read_csv(reports[1] / "train_history.csv")["step"]) == list(range(1, 13))  # rank 0 alone
    metrics = json.loads((reports[1] / "train_metrics.json").read_text())
    best = history[1]["overall_accuracy"]
    assert metrics["best_step"] == int(history[1]["step"][best.idxmax()]) and metrics["best_val"] == best.max()
    assert list(history[1]["best"]) == [v > best[:i].max() if i else True for i, v in enumerate(best)]
    scored = evaluate(ddp / "model", shards / "classification", split="val", device="cpu")
    assert scored["overall_accuracy"] == pytest.approx(metrics["best_val"], abs=1e-6)


def test_validation_chosen_thresholds_are_applied_by_evaluation_predictor_and_pyfunc(shards, tmp_path):
    from spectralgpt.inference import Predictor
    from spectralgpt.io.shards import ShardCorpus
    from spectralgpt.tracking.pyfunc import SpectralGPTPyfunc, class_names_of

    cfg = FinetuneConfig(task="multilabel", model="vit_tiny_patch8_64", mode="scratch", shards=str(shards),
                         out=str(tmp_path / "model"), train={**TRAIN, "max_steps": 12, "checkpoint_every": 100})
    finetune_stage.finetune(cfg, work=tmp_path / "runs", reports=tmp_path / "reports")
    extra = json.loads((tmp_path / "model" / "config.json").read_text())["extra"]
    thresholds = np.array(extra["thresholds"])
    assert extra["threshold_mode"] == "per_class" and len(thresholds) == 19 and extra["best_step"] is not None

    on_val = evaluate(tmp_path / "model", shards / "multilabel", "val")
    on_test = evaluate(tmp_path / "model", shards / "multilabel", "test", out_dir=tmp_path / "eval")
    print(f"\nmultilabel (tiny): val micro F1 {on_val['micro_f1']:.3f}, test micro mAP {on_test['micro_map']:.3f} "
          f"and micro F1 {on_test['micro_f1']:.3f} with validation-chosen thresholds")
    assert on_val["micro_f1"] > 0
    assert np.allclose(on_val["per_class_threshold"], thresholds)
    per_class = pd.read_csv(tmp_path / "eval/per_class.csv")
    assert {"ap", "threshold"} <= set(per_class.columns)
    assert {"micro_map", "micro_f1"} <= set(json.loads((tmp_path / "eval/metrics.json").read_text()))

    # Predictor and the pyfunc decide with the same thresholds, and their decisions give evaluation's F1
    predictor = Predictor.load(tmp_path / "model")
    data = predictor.task.dataset(ShardCorpus(shards / "multilabel", split="val"), predictor.size, train=False,
                                  recipe=predictor.meta["normalization"])
    batch = data.batch(list(range(len(data))))
    probs = predictor.forward(batch["image"]).numpy()
    decided = predictor.decide(probs)
    assert np.array_equal(decided, probs >= thresholds)
    y = batch["label"].numpy().astype(bool)
    tp, fp, fn = (decided & y).sum(), (decided & ~y).sum(), (~decided & y).sum()
    assert 2 * tp / (2 * tp + fp + fn) == pytest.approx(on_val["micro_f1"], abs=1e-6)
    model = SpectralGPTPyfunc()
    model.predictor, model.class_names = predictor, class_names_of(predictor)
    table = model._table(pd.DataFrame({"path": [f"img{i}.tif" for i in range(len(probs))]}), probs)
    names = model.class_names
    assert table["predicted"].tolist() == [";".join(n for n, on in zip(names, row) if on) for row in decided]
