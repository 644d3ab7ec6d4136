"""PANGAEA-style dense evaluation: a UPerNet decoder (`spectralgpt.models.upernet`) over intermediate encoder
layers, trained on a segmentation or change-detection training split with the encoder frozen (or fine-tuned),
then scored on whole test scenes by the evaluation stage's own code (tiles stitched back, every pixel once).

The dense model is the encoder's architecture with ``head: upernet``: the pretrained weights load into it as
into any SpectralGPT model (spatial position tables interpolated to the benchmark's image size). With
``freeze_encoder`` every encoder weight is frozen and stochastic depth is off, so the encoder computes exactly
what it computes at evaluation; only ``decode_head.*`` trains. Training is the shared engine (`fit`): AdamW,
warmup + cosine, AMP on GPUs, checkpoints keyed by the run's inputs (training data, encoder weights, settings),
so an interrupted benchmark resumes and a finished one with the same inputs is reused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from spectralgpt.models.checkpoint import ENCODER_PREFIXES, load_pretrained, save_model
from spectralgpt.models.config import ModelConfig
from spectralgpt.models.registry import build_model
from spectralgpt.training.engine import fit
from spectralgpt.training.history import History

log = logging.getLogger(__name__)
MODEL = "model"


@dataclass
class DenseRun:
    model_dir: Path
    history: list[dict]
    reused: bool
    trainable: int
    frozen: int


def dense_config(encoder_cfg: ModelConfig, model_kind: str, num_classes: int, layers=None,
                 channels: int | None = None, dropout: float = 0.1, freeze_encoder: bool = True,
                 img_size: int | None = None) -> ModelConfig:
    """The encoder's architecture as a `model_kind` model with a UPerNet head over `layers`."""
    arch = encoder_cfg.model_dump()
    arch.update(kind=model_kind, head="upernet", upernet_layers=None if layers is None else tuple(layers),
                num_classes=num_classes, dense_dropout=dropout, img_size=img_size or encoder_cfg.img_size,
                multilabel=False)
    if channels is not None:
        arch["fpn_channels"] = channels
    if freeze_encoder:
        arch["drop_path_rate"] = 0.0
    return ModelConfig(**arch)


def freeze_encoder_weights(model) -> tuple[int, int]:
    """requires_grad False on every encoder weight; returns (trainable, frozen) parameter counts."""
    trainable = frozen = 0
    for name, p in model.named_parameters():
        p.requires_grad = not name.startswith(ENCODER_PREFIXES)
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    return trainable, frozen


def train_dense(cfg: ModelConfig, encoder_source: str | Path, task, dataset, step, train_cfg, run_dir: Path,
                inputs: dict, freeze_encoder: bool = True, extra: dict | None = None, callbacks=()) -> DenseRun:
    """Train the UPerNet model `cfg` (encoder weights from `encoder_source`) with `step` on `dataset` in
    `run_dir` (opened for `inputs` by the caller) and save it to ``run_dir/model``; a model already saved there
    (same inputs) is reused."""
    run_dir = Path(run_dir)
    history = History(run_dir / "history.jsonl", protocol="upernet")
    model_dir = run_dir / MODEL
    if (model_dir / "config.json").exists():
        log.info("upernet: reusing the finished run in %s (same inputs)", run_dir)
        meta = json.loads((model_dir / "config.json").read_text()).get("extra") or {}
        return DenseRun(model_dir, history.rows(), True, int(meta.get("trainable", 0)), int(meta.get("frozen", 0)))
    import torch

    torch.manual_seed(train_cfg.seed)  # the decoder's initial weights are part of what a seed reproduces
    model = build_model(cfg)
    report = load_pretrained(model, encoder_source, strict_encoder=True)
    log.info("upernet: encoder weights from %s: %s", encoder_source, report)
    if freeze_encoder:
        trainable, frozen = freeze_encoder_weights(model)
    else:
        trainable, frozen = sum(p.numel() for p in model.parameters()), 0
    log.info("upernet over layers %s: %d trainable, %d frozen parameters", list(cfg.feature_layers), trainable, frozen)
    fit(model, step, dataset, train_cfg, run_dir, [history, *callbacks], inputs=inputs)
    model.eval()
    save_model(model, model_dir, normalization=dataset.normalization_record(),  # recipe and any band mapping
               extra={**(extra or {}), "task": task.name, "protocol": "upernet", "freeze_encoder": freeze_encoder,
                      "feature_layers": list(cfg.feature_layers), "trainable": trainable, "frozen": frozen,
                      "load_report": str(report)})
    return DenseRun(model_dir, history.rows(), False, trainable, frozen)
