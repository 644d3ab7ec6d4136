"""Training: one engine (`fit`) for pretraining and fine-tuning."""

from spectralgpt.training.config import TrainConfig
from spectralgpt.training.engine import Callback, FitResult, fit

__all__ = ["Callback", "FitResult", "TrainConfig", "fit"]
