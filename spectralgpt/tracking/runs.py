"""MLflow runs: one parent run per pipeline run, one child run per stage, lineage tags on every run.

A pipeline (the `retrain` flow, or a person running `dvc repro`) opens the parent with `pipeline_run`, which
exports its id as ``SPECTRALGPT_PARENT_RUN_ID``; every stage, in this process or in a DVC subprocess, opens
`stage_run(name, params)` and is nested under that parent. A run that raises, is interrupted (Ctrl-C) or is
terminated (SIGTERM) ends FAILED, never RUNNING. `check_tracking(uri)` fails fast, naming the URI, when the
store cannot be reached, before any work starts.

Lineage tags (``spectralgpt.*``): ``stage``, ``git_commit`` (``git rev-parse HEAD``, else "unknown"),
``git_dirty``, ``data_md5`` (the md5 recorded in ``data.dvc``, else "none"), ``params_hash`` (sha256 of the
canonical JSON of the stage's params section), ``parent_run_id``.

Which store (`resolve_uri`): ``$MLFLOW_TRACKING_URI`` when it is set and not empty, else the URI a caller passes
(``tracking.uri`` of the params file), else ``sqlite:///mlflow.db``. The environment wins over the params file,
as MLflow users expect, so a deployment or a shell points every stage at one server without editing params.
Relative SQLite paths (``sqlite:///mlflow.db``) and relative artifact roots (``mlartifacts``) resolve against
`project_root()`, the main repository's root, not the working directory: a stage run by ``dvc exp run --queue``
or ``--temp`` works in a temporary copy under ``<repo>/.dvc/tmp/exps/`` that DVC deletes afterwards, and its
runs must land in the main store. Absolute paths and other schemes (http, postgresql, s3, ...) are kept as
given; with a tracking server (http/https) a relative artifact root means the server's own artifact store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow import MlflowClient
from mlflow.entities import RunStatus

log = logging.getLogger(__name__)

PARENT_ENV = "SPECTRALGPT_PARENT_RUN_ID"
URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_URI = "sqlite:///mlflow.db"
LOCAL_UI = "http://127.0.0.1:5000"  # where `make ui` serves the MLflow UI of a local store
EXP_COPIES = (".dvc", "tmp", "exps")  # DVC's temporary experiment workspaces (EXEC_TMP_DIR under repo.tmp_dir)
DEFAULT_EXPERIMENT = "spectralgpt"
TAG = "spectralgpt."
MAX_PARAM_CHARS = 6000  # MLflow 3's limit on a parameter value
FAILED = RunStatus.to_string(RunStatus.FAILED)
FINISHED = RunStatus.to_string(RunStatus.FINISHED)


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI."""


# ----------------------------------------------------------------------------------------------- store


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The root of the main repository around `start` (default: the working directory): where relative
    tracking paths resolve, so that runs from DVC's temporary experiment copies land in the main store.

    1. In a stage of a DVC experiment (``dvc exp run``, ``--temp``, ``--queue``; DVC >= 3.17) DVC exports
       ``DVC_EXP_BASELINE_REV`` and ``DVC_ROOT``, the main repository's root even inside a temporary copy: when
       both are set and ``DVC_ROOT`` holds ``.dvc``, that is the root.
    2. Else the nearest folder at or above `start` that holds ``.dvc`` or ``.git``; when it lies inside
       ``<X>/.dvc/tmp/exps/`` (DVC's copies: ``exps/tmpXXXX`` for the queue, ``exps/standalone/tmpXXXX`` for
       ``--temp``), the root is X.
    3. Else `start` itself.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    dvc_root = os.environ.get("DVC_ROOT")
    if dvc_root and os.environ.get("DVC_EXP_BASELINE_REV") and (Path(dvc_root) / ".dvc").is_dir():
        return Path(dvc_root).resolve()
    nearest = next((d for d in (here, *here.parents) if (d / ".dvc").is_dir() or (d / ".git").exists()), None)
    if nearest is None:
        return here
    return _owner_of_exp_copy(nearest) or nearest


def _owner_of_exp_copy(folder: Path) -> Path | None:
    """X when `folder` lies inside ``X/.dvc/tmp/exps/``, else None."""
    parts, n = folder.parts, len(EXP_COPIES)
    for i in range(1, len(parts) - n):  # the outermost match is the main repository
        if parts[i:i + n] == EXP_COPIES and len(parts) > i + n:
            return Path(*parts[:i])
    return None


def resolve_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``$MLFLOW_TRACKING_URI`` when set, else `uri` (``tracking.uri``), else
    ``sqlite:///mlflow.db``; a relative SQLite path is made absolute against `project_root()` (module doc)."""
    chosen = os.environ.get(URI_ENV) or uri or DEFAULT_URI
    if urllib.parse.urlparse(chosen).scheme != "sqlite":
        return chosen
    path = _sqlite_path(chosen)
    if path is None:
        return chosen
    query = chosen.partition("?")[2]
    return f"sqlite:///{path}" + (f"?{query}" if query else "")


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a SQLite URI, absolute (a relative one against `project_root()`); None in memory."""
    rest = uri[len("sqlite://"):].partition("?")[0]
    if rest in ("", "/", "/:memory:"):
        return None
    path = Path(rest[1:] if rest.startswith("/") else rest)
    return path if path.is_absolute() else project_root() / path


def artifact_location(artifacts: str | os.PathLike | None, experiment: str, uri: str | None = None) -> str | None:
    """Where experiment `experiment` keeps its artifacts: ``<artifacts>/<experiment>``, a relative local folder
    made absolute against `project_root()`. None (the store decides) without `artifacts`, or for a relative folder
    with a tracking server (http/https), whose own artifact store is meant: a path on this machine is no place
    for artifacts that other machines read."""
    if artifacts is None:
        return None
    text = str(artifacts)
    if "://" in text:
        return f"{text.rstrip('/')}/{experiment}"
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        if urllib.parse.urlparse(resolve_uri(uri)).scheme in ("http", "https"):
            return None
        folder = project_root() / folder
    return (folder.resolve() / experiment).as_uri()


def ui_address(uri: str | None = None) -> str:
    """The MLflow UI for the store: a tracking server serves it at its own address; a local store is served by
    ``make ui`` at http://127.0.0.1:5000."""
    uri = resolve_uri(uri)
    return uri.rstrip("/") if urllib.parse.urlparse(uri).scheme in ("http", "https") else LOCAL_UI


def run_ui_url(run_id: str, uri: str | None = None) -> str:
    """The MLflow UI page of run `run_id` (its experiment is looked up in the store)."""
    experiment_id = MlflowClient(resolve_uri(uri)).get_run(run_id).info.experiment_id
    return f"{ui_address(uri)}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_ui_url(name: str, version: str | int, uri: str | None = None) -> str:
    """The MLflow UI page of version `version` of registered model `name`."""
    return f"{ui_address(uri)}/#/models/{urllib.parse.quote(name)}/versions/{version}"


def check_tracking(uri: str | None = None, timeout: float = 5.0) -> str:
    """Make sure the tracking store at `uri` can be used; returns the URI, raises `TrackingError` naming it.

    sqlite: the database folder exists or can be created and is writable, and the schema opens.
    http(s): the server answers ``/health`` within `timeout` seconds (MLflow's own client would retry for
    minutes). file: (deprecated by MLflow) the folder can be created. Other schemes are left to MLflow.
    """
    uri = resolve_uri(uri)
    scheme = urllib.parse.urlparse(uri).scheme
    try:
        if scheme == "sqlite":
            path = _sqlite_path(uri)
            if path is not None:
                folder = path.parent if str(path.parent) else Path(".")
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise TrackingError(f"MLflow tracking URI {uri}: cannot create the database folder {folder}: "
                                        f"{e.strerror or e}") from None
                if not os.access(folder, os.W_OK):
                    raise TrackingError(f"MLflow tracking URI {uri}: database folder {folder} is not writable")
            MlflowClient(uri).search_experiments(max_results=1)
        elif scheme in ("http", "https"):
            url = uri.rstrip("/") + "/health"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s) only)
                    if resp.status >= 400:
                        raise TrackingError(f"MLflow tracking server {uri} answered {resp.status} on /health")
            except urllib.error.HTTPError as e:
                raise TrackingError(f"MLflow tracking server {uri} answered {e.code} on /health") from None
            except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
                reason = getattr(e, "reason", e)
                raise TrackingError(f"MLflow tracking server {uri} is unreachable ({reason}); start it or set "
                                    f"{URI_ENV} / --tracking-uri to a reachable store") from None
        elif scheme in ("", "file"):
            folder = Path(urllib.parse.urlparse(uri).path if scheme == "file" else uri)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise TrackingError(f"MLflow tracking URI {uri}: cannot create {folder}: {e.strerror or e}") from None
            log.warning("MLflow's file store (%s) is deprecated; prefer sqlite:///mlflow.db", uri)
    except TrackingError:
        raise
    except Exception as e:  # the store itself refused (corrupt database, wrong schema, ...)
        raise TrackingError(f"MLflow tracking URI {uri} cannot be used: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}") from e
    return uri


def use_tracking(uri: str | None = None, check: bool = True) -> str:
    """Point MLflow's fluent API at `uri` (resolved as in `resolve_uri`), checked first."""
    uri = check_tracking(uri) if check else resolve_uri(uri)
    set_fluent_uri(uri)
    return uri


def set_fluent_uri(uri: str) -> None:
    """Point MLflow's fluent API at `uri` without exporting it. `mlflow.set_tracking_uri` also writes
    ``$MLFLOW_TRACKING_URI`` (for subprocesses), which would then win over every later ``tracking.uri`` in this
    process (`resolve_uri`); the variable keeps the value the user gave it, or stays unset. Subprocesses (DVC
    stages) resolve the same store themselves from the same params and environment."""
    before = os.environ.get(URI_ENV)
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop(URI_ENV, None)
    else:
        os.environ[URI_ENV] = before


def ensure_experiment(name: str = DEFAULT_EXPERIMENT, artifacts: str | os.PathLike | None = None,
                      uri: str | None = None) -> str:
    """The id of experiment `name`, created with its artifacts under `artifacts/<name>` when given (see
    `artifact_location`)."""
    client = MlflowClient(resolve_uri(uri))
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(artifacts, name, uri))
    except mlflow.exceptions.MlflowException:  # created concurrently by another stage
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


# --------------------------------------------------------------------------------------------- lineage


def git_commit(cwd: str | os.PathLike | None = None) -> tuple[str, bool | None]:
    """(HEAD commit, working tree dirty) of the repository around `cwd`; ("unknown", None) outside one."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown", None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=10)
        return head.stdout.strip(), (bool(status.stdout.strip()) if status.returncode == 0 else None)
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def data_md5(dvc_file: str | os.PathLike = "data.dvc") -> str:
    """The md5 DVC recorded for the raw corpus (``outs[0].md5`` of `dvc_file`); "none" if absent."""
    try:
        meta = yaml.safe_load(Path(dvc_file).read_text()) or {}
        outs = meta.get("outs") or []
        return str(outs[0].get("md5") or outs[0].get("etag") or "none") if outs else "none"
    except FileNotFoundError:
        return "none"
    except (OSError, yaml.YAMLError, AttributeError, IndexError) as e:
        log.warning("cannot read %s for lineage: %s", dvc_file, e)
        return "unreadable"


def _jsonable(v):
    if hasattr(v, "model_dump"):
        return v.model_dump(mode="json")
    if isinstance(v, Path):
        return str(v)
    return str(v)


def params_hash(params: Mapping | Any | None) -> str:
    """sha256 (16 hex digits) of the canonical JSON of a params section (a dict or a pydantic model)."""
    if params is None:
        return "none"
    if hasattr(params, "model_dump"):
        params = params.model_dump(mode="json")
    text = json.dumps(params, sort_keys=True, default=_jsonable, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flatten(d: Mapping | Any, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """{"train": {"lr": 1e-3}, "bands": ["B2", "B3"]} -> {"train.lr": 1e-3, "bands": '["B2", "B3"]'}."""
    if hasattr(d, "model_dump"):
        d = d.model_dump(mode="json")
    out: dict[str, Any] = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if hasattr(v, "model_dump"):
            v = v.model_dump(mode="json")
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key, sep))
        elif isinstance(v, (list, tuple, Mapping)):
            out[key] = json.dumps(v, default=_jsonable)
        else:
            out[key] = v
    return out


def lineage_tags(stage: str | None, params=None, parent_run_id: str | None = None,
                 root: str | os.PathLike | None = None) -> dict[str, str]:
    root = Path(root) if root is not None else Path.cwd()
    commit, dirty = git_commit(root)
    tags = {f"{TAG}git_commit": commit, f"{TAG}data_md5": data_md5(root / "data.dvc"),
            f"{TAG}params_hash": params_hash(params), f"{TAG}parent_run_id": parent_run_id or "none"}
    if dirty is not None:
        tags[f"{TAG}git_dirty"] = str(dirty).lower()
    if stage:
        tags[f"{TAG}stage"] = stage
    return tags


# ------------------------------------------------------------------------------------------------ runs


class Run:
    """A handle on an open run, so that callers log without importing MLflow."""

    def __init__(self, run_id: str, client: MlflowClient):
        self.run_id, self.client = run_id, client

    def __repr__(self) -> str:
        return f"Run({self.run_id})"

    def log_params(self, params: Mapping | Any) -> None:
        flat = {k: (str(v)[:MAX_PARAM_CHARS] if v is not None else "None") for k, v in flatten(params).items()}
        if flat:
            mlflow.log_params(flat, run_id=self.run_id)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        clean = numeric(metrics)
        if clean:
            mlflow.log_metrics(clean, step=step, run_id=self.run_id)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> bool:
        """Log a file or a folder; a missing one is a warning, not an error (returns whether it was logged)."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path=artifact_path or path.name)
        elif path.is_file():
            self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)
        else:
            log.warning("artifact %s does not exist; not logged to run %s", path, self.run_id)
            return False
        return True

    def log_artifacts(self, paths: Iterable[str | os.PathLike], artifact_path: str | None = None) -> int:
        return sum(self.log_artifact(p, artifact_path) for p in paths)

    def log_dict(self, obj: Mapping, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, dict(obj), artifact_file)


def numeric(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a (nested) metrics dict, flattened with '.'; lists, strings and NaN dropped."""
    out = {}
    for k, v in metrics.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(numeric(v, key))
        elif isinstance(v, bool):
            out[key] = float(v)
        elif isinstance(v, (int, float)) or (hasattr(v, "item") and getattr(v, "ndim", 1) == 0):
            f = float(v)
            if math.isfinite(f):
                out[key] = f
    return out


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM raises SystemExit(143) so that the run is closed as FAILED.

    Only in the main thread and only when SIGTERM has its default handler (an orchestrator's own handler
    is left alone)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def _raise(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _status_for(exc: BaseException | None) -> tuple[str, str | None]:
    if exc is None:
        return FINISHED, None
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return FINISHED, None
    if isinstance(exc, KeyboardInterrupt):
        return FAILED, "interrupted (KeyboardInterrupt)"
    if isinstance(exc, SystemExit) and exc.code == 128 + signal.SIGTERM:
        return FAILED, "terminated (SIGTERM)"
    return FAILED, f"{type(exc).__name__}: {exc}"[:5000]


@contextlib.contextmanager
def _active(run_id: str, client: MlflowClient, log_system_metrics: bool, resumed: bool) -> Iterator[Run]:
    """Make `run_id` the active fluent run for the block; end it FINISHED or FAILED, never RUNNING."""
    mlflow.start_run(run_id=run_id, nested=True, log_system_metrics=log_system_metrics)
    error: BaseException | None = None
    try:
        with _terminate_as_exit():
            yield Run(run_id, client)
    except BaseException as e:
        error = e
        raise
    finally:
        status, reason = _status_for(error)
        try:
            if reason:
                client.set_tag(run_id, f"{TAG}failure", reason)
        except Exception:  # the store may be the thing that failed: still try to end the run
            log.exception("could not record the failure reason on run %s", run_id)
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status)
        else:  # someone ended it for us or the stack is different: set the status explicitly
            client.set_terminated(run_id, status)
        if status == FAILED:
            log.warning("MLflow run %s ended FAILED: %s", run_id, reason)


def _owner_tags() -> dict[str, str]:
    return {f"{TAG}host": socket.gethostname(), f"{TAG}pid": str(os.getpid())}


def reap_orphans(client: MlflowClient, experiment_id: str, stage: str) -> list[str]:
    """Runs of `stage` left RUNNING by a process on this host that no longer exists (killed with SIGKILL,
    power loss) are ended FAILED, so a killed stage never stays 'running' once the stage runs again."""
    host, reaped = socket.gethostname(), []
    query = f"attributes.status = 'RUNNING' and tags.`{TAG}stage` = '{stage}' and tags.`{TAG}host` = '{host}'"
    for run in client.search_runs([experiment_id], query, max_results=100):
        pid = int(run.data.tags.get(f"{TAG}pid", "0") or 0)
        if pid and pid != os.getpid() and not _alive(pid):
            client.set_tag(run.info.run_id, f"{TAG}failure", f"process {pid} on {host} ended without closing the run")
            client.set_terminated(run.info.run_id, FAILED)
            reaped.append(run.info.run_id)
            log.warning("MLflow run %s of stage %s was left RUNNING by a dead process; marked FAILED",
                        run.info.run_id, stage)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_kwargs(experiment: str, artifacts, uri: str | None, check: bool) -> tuple[MlflowClient, str]:
    uri = use_tracking(uri, check=check)
    return MlflowClient(uri), ensure_experiment(experiment, artifacts, uri)


@contextlib.contextmanager
def pipeline_run(name: str = "pipeline", params=None, tags: Mapping[str, Any] | None = None, *,
                 run_id: str | None = None, uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT,
                 artifacts: str | os.PathLike | None = None, root: str | os.PathLike | None = None,
                 log_system_metrics: bool = False, check: bool = True) -> Iterator[Run]:
    """Open (or, with `run_id`, resume) the parent run of one pipeline run.

    While the block runs, ``SPECTRALGPT_PARENT_RUN_ID`` names it, so stage runs in this process and in
    subprocesses (``dvc repro``) nest under it. Ends FINISHED, or FAILED if the block raises/is interrupted.
    """
    client, exp_id = _start_kwargs(experiment, artifacts, uri, check)
    resumed = run_id is not None
    if resumed:
        client.get_run(run_id)  # fails clearly if it does not exist
    else:
        all_tags = {**lineage_tags(None, params, None, root), f"{TAG}kind": "pipeline", "mlflow.runName": name,
                    **{k: str(v) for k, v in (tags or {}).items()}}
        run_id = client.create_run(exp_id, run_name=name, tags=all_tags).info.run_id
    before = os.environ.get(PARENT_ENV)
    os.environ[PARENT_ENV] = run_id
    try:
        with _active(run_id, client, log_system_metrics, resumed) as run:
            if params is not None and not resumed:
                run.log_params(params)
            yield run
    finally:
        if before is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = before


@contextlib.contextmanager
def stage_run(name: str, params=None, tags: Mapping[str, Any] | None = None, *, parent_run_id: str | None = None,
              uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT, artifacts: str | os.PathLike | None = None,
              root: str | os.PathLike | None = None, log_system_metrics: bool = True,
              check: bool = True) -> Iterator[Run]:
    """One stage's run, nested under `parent_run_id`, else ``$SPECTRALGPT_PARENT_RUN_ID``, else the active run.

    Tags: lineage (see the module doc) plus `tags`; params: `params` flattened ("train.lr"). System metrics
    (CPU, memory, GPU) are sampled while it runs. Ends FINISHED, or FAILED with a ``spectralgpt.failure`` tag
    if the block raises, is interrupted or terminated.
    """
    client, exp_id = _start_kwargs(experiment, artifacts, uri, check)
    active = mlflow.active_run()
    parent = parent_run_id or os.environ.get(PARENT_ENV) or (active.info.run_id if active else None)
    if parent:
        try:
            client.get_run(parent)
        except mlflow.exceptions.MlflowException as e:
            raise TrackingError(f"parent run {parent} not found in {mlflow.get_tracking_uri()}: {e}") from None
    reap_orphans(client, exp_id, name)
    all_tags = {**lineage_tags(name, params, parent, root), **_owner_tags(), "mlflow.runName": name,
                **{k: str(v) for k, v in (tags or {}).items()}}
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    from mlflow.tracking.context import registry as context_registry  # source name, user, git (MLflow's own)

    all_tags = context_registry.resolve_tags(all_tags)
    run_id = client.create_run(exp_id, run_name=name, tags=all_tags).info.run_id
    with _active(run_id, client, log_system_metrics, False) as run:
        if params is not None:
            run.log_params(params)
        yield run
