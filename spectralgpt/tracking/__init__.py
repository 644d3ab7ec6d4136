"""MLflow tracking: runs with lineage, a training callback, the pyfunc model, the registry and its promotion
policy. The only package that imports MLflow (see DESIGN.md).

Names are imported on first use, so a stage process that only opens runs does not import the model code.
"""

import importlib

_EXPORTS = {
    "runs": ("PARENT_ENV", "Run", "TrackingError", "check_tracking", "flatten", "lineage_tags", "params_hash",
             "pipeline_run", "resolve_uri", "stage_run"),
    "logger": ("MlflowLogger",),
    "pyfunc": ("SpectralGPTPyfunc", "log_pyfunc"),
    "registry": ("champion_to_rescore", "download", "record_rescore", "PromotionDecision", "RegisteredVersion", "RegistryError", "RollbackResult", "lineage",
                 "list_models", "model_name", "promote", "register", "rollback"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'spectralgpt.tracking' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"spectralgpt.tracking.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
