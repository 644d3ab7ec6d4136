"""Prefect flows: one per DVC stage (each DVC stage's command runs one), plus `retrain`. Wiring only.

The library logs through ``logging.getLogger("spectralgpt....")``; those lines belong in the Prefect UI next to
the flow's own. Prefect attaches its API log handler to the loggers named in ``PREFECT_LOGGING_EXTRA_LOGGERS``
when it configures logging, at ``import prefect``; importing this package first (``python -m flows.<stage>``,
``flows/retrain.py`` as a deployment's entry point) adds ``spectralgpt`` to that setting for this process and the
stages it starts (``dvc repro``). When Prefect was imported before (it reads its settings once, on import:
a test session, a script that imports Prefect first), Prefect's API log handler is attached here instead. The ``spectralgpt`` logger then passes INFO (Python's default
would drop everything below WARNING), and log lines that carry no run context (a data-loader thread) are dropped
from the API quietly instead of each raising a warning; they still reach the console.
"""

import atexit
import gc
import logging
import os
import sys

LIBRARY_LOGGER = "spectralgpt"
EXTRA_LOGGERS_ENV = "PREFECT_LOGGING_EXTRA_LOGGERS"


def _route_library_logs() -> None:
    names = [n.strip() for n in os.environ.get(EXTRA_LOGGERS_ENV, "").split(",") if n.strip()]
    if LIBRARY_LOGGER not in names:
        os.environ[EXTRA_LOGGERS_ENV] = ",".join([*names, LIBRARY_LOGGER])
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    library = logging.getLogger(LIBRARY_LOGGER)
    if library.level == logging.NOTSET:
        library.setLevel(logging.INFO)
    if "prefect" in sys.modules:  # Prefect read its settings before this package set them
        from prefect.logging.handlers import APILogHandler
        from prefect.settings import PREFECT_LOGGING_EXTRA_LOGGERS

        if LIBRARY_LOGGER not in (PREFECT_LOGGING_EXTRA_LOGGERS.value() or []) and \
                not any(isinstance(h, APILogHandler) for h in library.handlers):
            library.addHandler(APILogHandler())


_route_library_logs()
# Registered before any other exit hook, so it runs after all of them: the interpreter's last garbage collections
# then skip the objects torch, MLflow and Prefect made (1.4-1.9 s of every stage process' exit on 2 cores, 0.1 s
# with this). Nothing is lost: the exit hooks have flushed and closed what they own; objects still freed by
# reference counting are, only cycles left at exit are not collected.
atexit.register(gc.freeze)

from flows.timing import record_at_exit  # noqa: E402

record_at_exit()  # `make demo`'s per-stage timings: only when SPECTRALGPT_STAGE_TIMES names a file

# The modules a DVC stage's command runs (dvc.yaml: ``python -m flows.<stage>``), and the retrain flow: each
# imports Prefect, and torch, MLflow and the library through flows.common, before it does anything else.
STAGE_MODULES = frozenset({"flows.ingest", "flows.preprocess", "flows.pretrain", "flows.finetune",
                           "flows.evaluate", "flows.benchmark", "flows.retrain"})


def main_module(argv: list[str]) -> str | None:
    """The module a command line runs with ``-m`` (``python -m flows.finetune ...`` -> ``flows.finetune``)."""
    args = argv[1:]
    return args[args.index("-m") + 1] if "-m" in args[:-1] else None


def load_stage_imports(argv: list[str]) -> None:
    """In a stage process, import Prefect and flows.common (torch, MLflow, the library) with CPython's
    cyclic garbage collector paused, collect once, and freeze what is left out of later collections: while they
    load the collector would otherwise run about 1,100 times over the growing heap, and every full collection
    after would walk those objects again. On a 2-core Xeon (2026-12-04) a fine-tuning process with nothing left to
    train took 9.5-9.6 s instead of 11.1-11.3, its full collections 0.74-0.77 s instead of 1.25-1.37. Anywhere
    else (a test session, a notebook, the demo's own process) nothing changes."""
    if main_module(argv) not in STAGE_MODULES or not gc.isenabled():
        return
    gc.disable()
    try:
        import prefect  # noqa: F401
        import flows.common  # noqa: F401
    finally:
        gc.collect()  # the garbage the imports left (a few thousand objects) is freed, not frozen
        gc.freeze()
        gc.enable()


load_stage_imports(getattr(sys, "orig_argv", []))
