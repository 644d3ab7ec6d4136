"""Each task trains on the synthetic corpus and its loss falls; fine-tuning runs end to end on real EuroSAT."""

import numpy as np
import pytest
import torch

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.config import (DataConfig, FinetuneConfig, IngestConfig, Params, PreprocessConfig, PretrainConfig,
                                PretrainStage, SourceConfig)
from spectralgpt.data.preprocess import preprocess
from spectralgpt.data.sources import load_dataset
from spectralgpt.data.synthetic import generate_demo_corpus
from spectralgpt.evaluation.evaluate import evaluate
from spectralgpt.stages.finetune import finetune
from spectralgpt.stages.ingest import ingest
from spectralgpt.stages.preprocess import preprocess_all
from spectralgpt.stages.pretrain import pretrain

MODELS = {"classification": "vit_tiny_patch8_64", "multilabel": "vit_tiny_patch8_64",
          "segmentation": "seg_vit_tiny_patch8_64", "change": "cd_vit_tiny_patch8_64"}
TRAIN = dict(max_steps=16, batch_size=8, lr=1e-3, weight_decay=0.0, warmup_epochs=0, log_every=1, progress=False,
             checkpoint_every=100, seed=0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    generate_demo_corpus(root / "raw", scale="tiny")
    sources = {"pretrain": SourceConfig(kind="folder", root=str(root / "raw/pretrain")),
               "classification": SourceConfig(kind="eurosat", root=str(root / "raw/eurosat")),
               "multilabel": SourceConfig(kind="bigearthnet", root=str(root / "raw/bigearthnet")),
               "segmentation": SourceConfig(kind="segmunich", root=str(root / "raw/segmunich"),
                                            options={"fill_missing": "mean"}),
               "change": SourceConfig(kind="oscd", root=str(root / "raw/oscd"))}
    params = Params(data=DataConfig(raw=str(root / "raw"), interim=str(root / "interim"), shards=str(root / "shards"),
                                    sources=sources),
                    ingest=IngestConfig(workers=1), preprocess=PreprocessConfig(size=64, workers=1),
                    pretrain=PretrainConfig(stages=[PretrainStage(name="s", img_size=64, epochs=1)]))
    ingest(params)
    preprocess_all(params)
    return root


def losses(history):
    return [row["loss"] for row in history]


def test_pretraining_loss_falls(corpus, tmp_path):
    cfg = PretrainConfig(model="mae_vit_tiny_patch8_64", stages=[PretrainStage(name="s", img_size=64, epochs=1)],
                         train=TRAIN, shards=str(corpus / "shards"), out=str(tmp_path / "model"), figures_every=0)
    result = pretrain(cfg, work=tmp_path / "runs", reports=tmp_path / "reports")
    loss = losses(result.history)
    assert len(loss) == 16 and np.mean(loss[-4:]) < 0.8 * np.mean(loss[:4])
    assert (tmp_path / "reports/reconstruction.png").stat().st_size > 10_000


@pytest.mark.parametrize("task", ["pretrain", "classification"])
def test_augmenting_on_the_device_trains_the_same_weights(task, corpus, tmp_path):
    """augment_on="device" (the CUDA default: workers ship uint16 pixels, finish() runs after the copy) and
    "loader" draw the same crops and give the same weights, with a worker process and a resume point."""
    from spectralgpt.models import create_model
    from spectralgpt.training import TrainConfig, fit
    from spectralgpt.tasks import get_task
    from spectralgpt.tasks.classification import classification_step
    from spectralgpt.tasks.pretrain import mae_step

    data = get_task(task).dataset(corpus / "shards" / task / ("" if task == "pretrain" else "train"), 64, train=True)
    weights = {}
    for where in ("loader", "device"):
        torch.manual_seed(0)
        if task == "pretrain":
            model, step = create_model("mae_vit_tiny_patch8_64"), mae_step(0.75)
        else:
            model, step = create_model(MODELS[task], num_classes=10), classification_step(10)
        cfg = TrainConfig(**{**TRAIN, "max_steps": 3, "batch_size": 4, "num_workers": 1, "augment_on": where,
                             "device": "cpu"})  # bit-equality needs both on one device
        result = fit(model, step, data, cfg, tmp_path / where)
        assert result.steps == 3
        weights[where] = model.state_dict()
    for k, v in weights["loader"].items():
        assert torch.equal(v, weights["device"][k]), k


@pytest.mark.parametrize("task", MODELS)
def test_finetuning_loss_falls(task, corpus, tmp_path):
    # the tiny OSCD keeps 4 training tiles once a scene is held out for validation
    train = {**TRAIN, "batch_size": 4} if task == "change" else TRAIN
    cfg = FinetuneConfig(task=task, model=MODELS[task], mode="scratch", train=train, shards=str(corpus / "shards"),
                         out=str(tmp_path / "model"), class_weights="auto" if task == "change" else None,
                         model_overrides={"drop_path_rate": 0.0, **({"dense_dropout": 0.0} if task in ("segmentation", "change") else {})})
    result = finetune(cfg, work=tmp_path / "runs", reports=tmp_path / "reports")
    loss = losses(result.history)
    assert len(loss) == 16 and np.mean(loss[-4:]) < np.mean(loss[:4]), loss
    metrics = evaluate(tmp_path / "model", corpus / "shards" / task, "train", out_dir=tmp_path / "eval")
    assert 0 <= metrics[metrics["primary_metric"]] <= 1
    assert (tmp_path / "eval/metrics.json").exists()


def test_dense_tasks_are_scored_on_whole_scenes(corpus, tmp_path):
    from spectralgpt.io.shards import ShardCorpus
    from spectralgpt.models import create_model, save_model

    shards = corpus / "shards" / "change"
    test = ShardCorpus(shards, split="test")
    scenes = test.index.groupby("sample").agg(h=("row_off", "max"), w=("col_off", "max"), n=("window", "max"))
    pixels = int(((scenes.h + scenes.n) * (scenes.w + scenes.n)).sum())
    save_model(create_model("cd_vit_tiny_patch8_64"), tmp_path / "m", extra={"task": "change"})
    whole = evaluate(tmp_path / "m", shards, "test")
    tiles = evaluate(tmp_path / "m", shards, "test", legacy={"oscd_legacy_patch_eval": True})
    assert whole["scored_on"] == "scenes" and whole["num_pixels"] == pixels
    assert tiles["scored_on"] == "tiles" and tiles["num_pixels"] == len(test) * 64 * 64 > pixels


def test_linear_probe_trains_only_the_head(corpus, tmp_path):
    from spectralgpt.models import create_model, save_model

    save_model(create_model("mae_vit_tiny_patch8_64"), tmp_path / "pre")
    cfg = FinetuneConfig(task="classification", model="vit_tiny_patch8_64", mode="linear_probe",
                         pretrained=str(tmp_path / "pre"), train={**TRAIN, "max_steps": 2},
                         shards=str(corpus / "shards"), out=str(tmp_path / "model"))
    finetune(cfg, work=tmp_path / "runs", reports=tmp_path / "reports")
    from spectralgpt.models import load_model

    before, _ = load_model(tmp_path / "pre")
    after, _ = load_model(tmp_path / "model")
    assert np.allclose(before.state_dict()["blocks.0.attn.q.weight"], after.state_dict()["blocks.0.attn.q.weight"])


def test_wrong_model_for_task_fails_before_work(corpus, tmp_path):
    with pytest.raises(ValueError, match="needs a segmentation model"):
        FinetuneConfig(task="segmentation", model="vit_tiny_patch8_64", shards=str(corpus / "shards"),
                       out=str(tmp_path / "m"), pretrained=None)


def test_finetune_on_real_eurosat(real_data, tmp_path):
    ds = load_dataset("eurosat", real_data / "eurosat", bands=PRETRAIN_BANDS)
    preprocess(ds, tmp_path / "shards/classification", size=64, shard_size=16, workers=1, bands=PRETRAIN_BANDS,
               recipe="zscore", meta={"class_names": list(ds.class_names)})
    cfg = FinetuneConfig(task="classification", model="vit_tiny_patch8_64", mode="scratch",
                         train={**TRAIN, "max_steps": 4}, shards=str(tmp_path / "shards"), out=str(tmp_path / "model"))
    result = finetune(cfg, work=tmp_path / "runs", reports=tmp_path / "reports")
    assert all(np.isfinite(losses(result.history)))
    metrics = evaluate(tmp_path / "model", tmp_path / "shards/classification", "train", out_dir=tmp_path / "eval")
    assert metrics["num_items"] > 0 and (tmp_path / "eval/confusion_matrix.png").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pretraining_on_a_gpu_augments_there_and_resumes(corpus, tmp_path):
    """On CUDA the crops are finished on the GPU (close to the CPU's), bf16 autocast trains, and a second run
    of the same command resumes from the checkpoint instead of starting again."""
    from spectralgpt.data.datasets import make_loader
    from spectralgpt.models import create_model
    from spectralgpt.training import TrainConfig, fit
    from spectralgpt.tasks.pretrain import TASK, mae_step

    data = TASK.dataset(corpus / "shards" / "pretrain", 64, train=True)
    prepared = next(iter(make_loader(data, 8, defer=True, pin_memory=True)))
    on_gpu = data.finish({k: v.cuda(non_blocking=True) for k, v in prepared.items()})["image"]
    torch.testing.assert_close(on_gpu.cpu(), data.finish(prepared)["image"], atol=2e-5, rtol=1e-4)
    cfg = TrainConfig(**{**TRAIN, "max_steps": 4, "batch_size": 8, "num_workers": 2, "checkpoint_every": 2})
    first = fit(create_model("mae_vit_tiny_patch8_64"), mae_step(0.75), data, cfg, tmp_path)
    assert first.steps == 4 and first.history[0]["images_per_second"] > 0
    more = cfg.model_copy(update={"max_steps": 6})
    second = fit(create_model("mae_vit_tiny_patch8_64"), mae_step(0.75), data, more, tmp_path)
    assert second.resumed_from is not None and [r["step"] for r in second.history] == [5, 6]
