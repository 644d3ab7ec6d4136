"""`MlflowLogger`: a training-engine callback that records a fit in an MLflow run.

The engine calls `on_step` every `log_every` steps; those logs are buffered and sent in one `log_batch` call
every `flush_every` calls or `flush_seconds` seconds (and at epoch ends, checkpoints and the end), so tracking
costs one round trip per flush, not one per metric.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric

from spectralgpt.tracking.runs import Run, flatten, numeric
from spectralgpt.training.engine import Callback

log = logging.getLogger(__name__)
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch


class MlflowLogger(Callback):
    """Log a training run: train-start info as params (``train.*``), per-step logs as metrics (with the
    step), epoch-end logs as ``epoch.*`` metrics, checkpoint paths as tags, the fit result as ``fit.*``.

    Figures (e.g. the reconstructions pretraining writes every few epochs) are uploaded at each epoch end as
    artifacts under ``figures/step-<N>/`` with the step they were drawn at, so a run's pictures line up with its
    curves: `figures` is a folder, absolute or relative to the fit's output folder (``out_dir`` in the
    engine's train-start info); each PNG is uploaded once (again only when it is rewritten).

    `run` is a `Run` from `stage_run` (or a run id); `client` defaults to the current tracking URI.
    Logging errors are reported and swallowed: a tracking hiccup must not kill a training run.
    """

    def __init__(self, run: Run | str, client: MlflowClient | None = None, flush_every: int = 10,
                 flush_seconds: float = 15.0, prefix: str = "train", param_prefix: str = "train",
                 figures: str | Path | None = "figures"):
        self.run_id = run.run_id if isinstance(run, Run) else run
        self.client = client or (run.client if isinstance(run, Run) else MlflowClient())
        self.flush_every, self.prefix, self.param_prefix = max(1, flush_every), prefix, param_prefix
        self._buffer: list[Metric] = []
        self._since_flush, self.flush_seconds, self._last_flush = 0, flush_seconds, time.monotonic()
        self.figures = Path(figures) if figures is not None else None
        self._figures_dir = self.figures if self.figures is not None and self.figures.is_absolute() else None
        self._step, self._uploaded = 0, {}

    def _key(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix else k

    def _add(self, logs: dict, step: int, prefix: str | None = None) -> None:
        now = int(time.time() * 1000)
        for k, v in numeric(logs).items():
            key = f"{prefix}.{k}" if prefix else self._key(k)
            self._buffer.append(Metric(key, v, now, int(step)))

    def flush(self) -> None:
        buf, self._buffer, self._since_flush, self._last_flush = self._buffer, [], 0, time.monotonic()
        if not buf:
            return
        try:
            for i in range(0, len(buf), MAX_BATCH):
                self.client.log_batch(self.run_id, metrics=buf[i:i + MAX_BATCH])
        except Exception:
            log.exception("MLflow logging failed for run %s (%d metrics dropped)", self.run_id, len(buf))

    def _safe(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("MLflow logging failed for run %s", self.run_id)

    def log_figures(self, folder: str | Path, step: int) -> list[str]:
        """Upload the PNGs of `folder` that are new or rewritten since the last call, under
        ``figures/step-<step>/``; returns the artifact paths."""
        folder, done = Path(folder), []
        if not folder.is_dir():
            return done
        for png in sorted(folder.glob("*.png")):
            st = png.stat()
            if self._uploaded.get(str(png)) == (st.st_mtime_ns, st.st_size):
                continue
            try:
                self.client.log_artifact(self.run_id, str(png), f"figures/step-{int(step)}")
            except Exception:
                log.exception("MLflow logging failed for run %s (figure %s)", self.run_id, png)
                continue
            self._uploaded[str(png)] = (st.st_mtime_ns, st.st_size)
            done.append(f"figures/step-{int(step)}/{png.name}")
        return done

    def on_train_start(self, info: dict) -> None:
        if self.figures is not None and not self.figures.is_absolute():  # one logger can see several fits
            self._figures_dir = Path(info["out_dir"]) / self.figures if info.get("out_dir") else None
        self._step = int(info.get("start_step") or 0)
        flat = {f"{self.param_prefix}.{k}" if self.param_prefix else k: str(v)[:6000]
                for k, v in flatten(info).items()}
        existing = {}
        try:
            existing = self.client.get_run(self.run_id).data.params
        except Exception:
            pass
        # a resumed fit reports its start again: params are immutable, so only log the new or unchanged ones
        new = {k: v for k, v in flat.items() if k not in existing}
        changed = {k: v for k, v in flat.items() if k in existing and existing[k] != v}
        if new:
            from mlflow.entities import Param

            params = [Param(k, v) for k, v in new.items()]
            for i in range(0, len(params), 100):
                self._safe(lambda chunk: self.client.log_batch(self.run_id, params=chunk), params[i:i + 100])
        for k, v in changed.items():
            self._safe(self.client.set_tag, self.run_id, f"resumed.{k}", v)

    def on_step(self, step: int, logs: dict) -> None:
        self._step = int(step)
        self._add(logs, step)
        self._since_flush += 1
        if self._since_flush >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def on_validation(self, step: int, logs: dict) -> None:
        """Validation metrics as ``val.*`` curves by training step, beside the ``train.*`` loss."""
        self._add({k: v for k, v in logs.items() if k not in ("step", "best")}, step, prefix="val")
        self.flush()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self._add(logs, epoch, prefix="epoch")
        self.flush()
        if self._figures_dir is not None:
            self.log_figures(self._figures_dir, self._step)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.flush()
        self._safe(self.client.set_tag, self.run_id, "checkpoint.last", str(path))
        self._safe(self.client.set_tag, self.run_id, "checkpoint.last_step", str(step))

    def on_train_end(self, result) -> None:
        summary = {"steps": result.steps, "epochs": result.epochs, "seconds": result.seconds,
                   "images_per_second": result.images_per_second}
        self._add(summary, result.steps, prefix="fit")
        self.flush()
        if result.checkpoint is not None:
            self._safe(self.client.set_tag, self.run_id, "checkpoint.final", str(result.checkpoint))
        if result.resumed_from is not None:
            self._safe(self.client.set_tag, self.run_id, "checkpoint.resumed_from", str(result.resumed_from))
        if self._figures_dir is not None:  # the figures drawn at the end (e.g. the final reconstruction)
            self.log_figures(self._figures_dir, result.steps)
