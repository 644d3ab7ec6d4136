"""The SpectralGPT model family: MAE pretraining model, classifier, segmenter, change detector."""

from spectralgpt.models.checkpoint import (CheckpointError, LoadReport, export_published, load_model,
                                           load_pretrained, read_state_dict, save_model)
from spectralgpt.models.classifier import SpectralClassifier
from spectralgpt.models.config import ModelConfig
from spectralgpt.models.dense import SpectralChangeDetector, SpectralSegmenter
from spectralgpt.models.digest import model_digest
from spectralgpt.models.layers import patchify, unpatchify
from spectralgpt.models.mae import SpectralMAE, random_masking
from spectralgpt.models.registry import MODEL_CONFIGS, build_model, create_model, model_config

__all__ = [
    "MODEL_CONFIGS", "CheckpointError", "LoadReport", "ModelConfig", "SpectralChangeDetector", "SpectralClassifier",
    "SpectralMAE", "SpectralSegmenter", "build_model", "create_model", "export_published", "load_model",
    "load_pretrained", "model_config", "model_digest", "patchify", "random_masking", "read_state_dict", "save_model", "unpatchify",
]
