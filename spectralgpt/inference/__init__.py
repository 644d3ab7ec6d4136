"""Using trained models: a `Predictor` that preprocesses raw reflectance exactly as training did; whole-scene
prediction to GeoTIFF and embeddings to GeoParquet."""

from spectralgpt.inference.embed import embed_dataset, embed_scene
from spectralgpt.inference.predictor import Predictor
from spectralgpt.inference.resolve import resolve_model
from spectralgpt.inference.scene import SceneError, SceneResult, predict_scene

__all__ = ["Predictor", "SceneError", "SceneResult", "embed_dataset", "embed_scene", "predict_scene",
           "resolve_model"]
