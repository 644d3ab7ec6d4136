"""Using trained models: a `Predictor` that preprocesses raw reflectance exactly as training did."""

from spectralgpt.inference.predictor import Predictor

__all__ = ["Predictor"]
