"""MLflow tracking: runs with lineage, a training callback, the pyfunc model, the registry and its promotion
policy. The only package that imports MLflow (see DESIGN.md)."""

from spectralgpt.tracking.logger import MlflowLogger
from spectralgpt.tracking.pyfunc import SpectralGPTPyfunc, log_pyfunc
from spectralgpt.tracking.registry import (PromotionDecision, RegisteredVersion, RegistryError, RollbackResult,
                                           list_models, model_name, promote, register, rollback)
from spectralgpt.tracking.runs import (PARENT_ENV, Run, TrackingError, check_tracking, flatten, lineage_tags,
                                       params_hash, pipeline_run, resolve_uri, stage_run)

__all__ = [
    "PARENT_ENV", "MlflowLogger", "PromotionDecision", "RegisteredVersion", "RegistryError", "RollbackResult", "Run",
    "SpectralGPTPyfunc", "TrackingError", "check_tracking", "flatten", "lineage_tags", "list_models", "log_pyfunc",
    "model_name", "params_hash", "pipeline_run", "promote", "register", "resolve_uri", "rollback", "stage_run",
]
