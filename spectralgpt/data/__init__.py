"""The data layer: dataset readers (`load_dataset`), the sample record, input validation and quarantine.

`load_dataset` and the validation helpers are imported lazily (PEP 562) so that `spectralgpt.io.raster`, which
raises `BadSample`, can import `spectralgpt.data.sample` without a circular import.
"""

from spectralgpt.data.sample import BadSample, Reason, Sample

_LAZY = {
    "load_dataset": "spectralgpt.data.sources",
    "DATASET_KINDS": "spectralgpt.data.sources",
    "check_sample": "spectralgpt.data.validate",
    "scan": "spectralgpt.data.validate",
    "Quarantine": "spectralgpt.data.validate",
    "QuarantineError": "spectralgpt.data.validate",
}

__all__ = ["BadSample", "Reason", "Sample", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
