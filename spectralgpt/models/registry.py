"""Named model configurations (every published factory name plus small CPU configs) and `create_model`."""

from __future__ import annotations

from torch import nn

from spectralgpt.models.classifier import SpectralClassifier
from spectralgpt.models.config import ModelConfig
from spectralgpt.models.dense import SpectralChangeDetector, SpectralSegmenter
from spectralgpt.models.mae import SpectralMAE
from spectralgpt.models.upernet import UPerNetChangeDetector, UPerNetSegmenter

BASE = dict(embed_dim=768, depth=12, num_heads=12)
LARGE = dict(embed_dim=1024, depth=24, num_heads=16)
HUGE = dict(embed_dim=1280, depth=32, num_heads=16)
# Small configurations for CPU work (the demo pipeline, tests). Same architecture, narrower and shallower.
TINY = dict(embed_dim=96, depth=4, num_heads=3, decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4,
            pyramid_channels=(32, 64, 128, 256), fpn_channels=32)
SMALL = dict(embed_dim=384, depth=8, num_heads=6, decoder_embed_dim=256, decoder_depth=2, decoder_num_heads=8,
             pyramid_channels=(64, 128, 256, 512), fpn_channels=64)

CLS = dict(kind="classifier", drop_path_rate=0.2)
SEG = dict(kind="segmentation", drop_path_rate=0.5, num_classes=13)
CD = dict(kind="change", drop_path_rate=0.5, num_classes=2)

MODEL_CONFIGS: dict[str, dict] = {
    # pretraining (published factories: all share the 512 x 4 decoder)
    "mae_vit_base_patch8_96": dict(kind="mae", img_size=96, **BASE),
    "mae_vit_base_patch8_128": dict(kind="mae", img_size=128, **BASE),
    "mae_vit_base_patch8_2tensor_128": dict(kind="mae", img_size=128, t_patch_size=2, **BASE),
    "mae_vit_large_patch8_96": dict(kind="mae", img_size=96, **LARGE),
    "mae_vit_large_patch8_128": dict(kind="mae", img_size=128, **LARGE),
    "mae_vit_huge_patch8_96": dict(kind="mae", img_size=96, **HUGE),
    "mae_vit_huge_patch8_128": dict(kind="mae", img_size=128, **HUGE),
    # classification (published factories)
    "vit_base_patch8": dict(img_size=96, **BASE, **CLS),
    "vit_base_patch8_128": dict(img_size=128, **BASE, **CLS),
    "vit_base_patch16": dict(img_size=96, patch_size=16, **BASE, **CLS),
    "vit_base_patch16_128": dict(img_size=128, patch_size=16, **BASE, **CLS),
    "vit_base_patch8_channel10": dict(img_size=128, num_bands=10, t_patch_size=2,
                                      bands=("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"),
                                      **BASE, **CLS),
    "vit_base_patch8_120": dict(img_size=120, t_patch_size=12, **BASE, **CLS),
    "vit_large_patch8_128": dict(img_size=128, **LARGE, **CLS),
    "vit_large_patch16": dict(img_size=128, patch_size=16, **LARGE, **CLS),
    "vit_huge_patch8_128": dict(img_size=128, t_patch_size=12, **HUGE, **CLS),
    "vit_huge_patch14": dict(img_size=112, patch_size=14, **HUGE, **CLS),
    # dense downstream tasks (SegMunich segmentation, OSCD change detection)
    "seg_vit_base_patch8_128": dict(img_size=128, **BASE, **SEG),
    "cd_vit_base_patch8_128": dict(img_size=128, **BASE, **CD),
    # CPU-sized configurations
    "mae_vit_tiny_patch8_64": dict(kind="mae", img_size=64, **TINY),
    "vit_tiny_patch8_64": dict(img_size=64, **TINY, **CLS),
    "seg_vit_tiny_patch8_64": dict(img_size=64, **TINY, **SEG),
    "cd_vit_tiny_patch8_64": dict(img_size=64, **TINY, **CD),
    "mae_vit_small_patch8_128": dict(kind="mae", img_size=128, **SMALL),
    "vit_small_patch8_128": dict(img_size=128, **SMALL, **CLS),
    "seg_vit_small_patch8_128": dict(img_size=128, **SMALL, **SEG),
    "cd_vit_small_patch8_128": dict(img_size=128, **SMALL, **CD),
}

CLASSES = {"mae": SpectralMAE, "classifier": SpectralClassifier, "segmentation": SpectralSegmenter,
           "change": SpectralChangeDetector}
#: the classes of `head: upernet` (dense kinds only; ModelConfig refuses it elsewhere)
UPERNET_CLASSES = {"segmentation": UPerNetSegmenter, "change": UPerNetChangeDetector}


def model_config(name: str, **overrides) -> ModelConfig:
    """The validated configuration of a named model with `overrides` applied."""
    if name not in MODEL_CONFIGS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODEL_CONFIGS)}")
    return ModelConfig(**{**MODEL_CONFIGS[name], **overrides})


def build_model(cfg: ModelConfig) -> nn.Module:
    return (UPERNET_CLASSES if cfg.head == "upernet" else CLASSES)[cfg.kind](cfg)


def create_model(name: str | ModelConfig, **overrides) -> nn.Module:
    """`create_model("mae_vit_base_patch8_128", img_size=96)`; also accepts a ModelConfig."""
    if isinstance(name, ModelConfig):
        return build_model(ModelConfig(**{**name.model_dump(), **overrides}))
    return build_model(model_config(name, **overrides))
