"""The frozen encoder of a benchmark and its features.

`load_encoder` takes any SpectralGPT weights (our model folder of any kind: MAE, classifier, segmenter, change
detector; or a published ``.pth`` with its named architecture) into a bare encoder (`SpectralViT`: tokenizer,
position tables, blocks, final norm) at the benchmark's image size, spatial position tables interpolated when
that differs. `pooled_features` runs a dataset through it once, without augmentation: the mean over every
spectral-spatial token, then the encoder's final LayerNorm (the embedding the classifier's head reads).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from spectralgpt.models.checkpoint import CheckpointError, LoadReport, config_of, load_pretrained, read_config
from spectralgpt.models.config import ModelConfig
from spectralgpt.models.digest import model_digest
from spectralgpt.models.registry import model_config
from spectralgpt.models.vit import SpectralViT

log = logging.getLogger(__name__)


@dataclass
class Encoder:
    model: SpectralViT
    cfg: ModelConfig
    source: str
    digest: str
    load_report: LoadReport


def encoder_config(source: str | Path, arch: str | None = None, img_size: int | None = None,
                   overrides: dict | None = None) -> ModelConfig:
    """The encoder architecture of `source`: the named `arch` with `overrides`, else the model folder's
    config.json; at `img_size`, without stochastic depth (the encoder is evaluated, not trained)."""
    extra = {**(overrides or {}), **({"img_size": img_size} if img_size else {})}
    if arch is not None:
        cfg = model_config(arch, **extra)
    else:
        if not Path(source).is_dir():
            raise CheckpointError(f"encoder {source} is not a model folder; for a published checkpoint name its "
                                  "architecture (benchmark.arch)")
        cfg = config_of(read_config(source), source, **extra)
    return cfg.model_copy(update={"drop_path_rate": 0.0, "head_dropout": 0.0, "grad_checkpointing": False})


def load_encoder(source: str | Path, arch: str | None = None, img_size: int | None = None,
                 overrides: dict | None = None) -> Encoder:
    """The frozen encoder (eval mode, no gradients) of `source`; every encoder weight must be in it."""
    cfg = encoder_config(source, arch, img_size, overrides)
    model = SpectralViT(cfg)
    model.init_weights()
    report = load_pretrained(model, source, strict_encoder=True)
    model.eval().requires_grad_(False)
    return Encoder(model, cfg, str(source), model_digest(source), report)


def pool(encoder: SpectralViT, imgs: torch.Tensor) -> torch.Tensor:
    """(B, bands, H, W) -> (B, D): mean over all tokens, then the final norm."""
    return encoder.norm(encoder.encode(imgs, norm=False).mean(dim=1))


@dataclass
class Features:
    x: torch.Tensor  # (N, D) float32
    y: torch.Tensor  # (N,) int64 or (N, C) float32 multi-hot
    index: torch.Tensor  # (N,) dataset rows


@torch.no_grad()
def pooled_features(encoder: nn.Module, dataset, batch_size: int = 64, device: str | torch.device = "cpu",
                    desc: str = "features") -> Features:
    """Pooled features and labels of every item of a task dataset (``dataset.batch(indices)`` with ``image``
    and ``label``), in dataset order, on the CPU."""
    encoder = encoder.to(device).eval()
    xs, ys, idx = [], [], []
    rows = list(range(len(dataset)))
    with tqdm(total=len(rows), desc=desc, unit="image", leave=False, disable=None) as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            batch = dataset.batch(chunk)
            xs.append(pool(encoder, batch["image"].to(device)).float().cpu())
            ys.append(batch["label"])
            idx.append(torch.as_tensor(chunk))
            bar.update(len(chunk))
    if not xs:
        raise ValueError("the dataset is empty: no features to compute")
    return Features(torch.cat(xs), torch.cat(ys), torch.cat(idx))
