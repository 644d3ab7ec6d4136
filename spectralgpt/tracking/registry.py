"""The model registry: one registered model per task (``spectralgpt-<task>``), aliases ``challenger`` and
``champion``, and the promotion policy.

* `register` logs a model folder as a pyfunc model and makes it a new version with alias ``challenger``;
  its tags hold the evaluation metrics (``metric.<name>``), the primary metric and its value, and the
  version of the evaluation data.
* `promote` moves ``champion`` to the challenger only when both were evaluated on the SAME data version and
  the challenger's primary metric beats the champion's by more than `margin` (no champion yet: the challenger
  becomes champion). Every decision is recorded as ``promotion.*`` tags on the challenger and returned as a
  `PromotionDecision`. Promoting again is harmless: a challenger that already is champion is left alone.
* `champion_to_rescore` / `record_rescore`: when the test set changed (the challenger was scored on another data
  version than the champion), the retrain flow scores the champion again on the challenger's data and records
  it on the champion (its old score kept in ``rescored_from``), so the two become comparable instead of every
  challenger being rejected until someone re-evaluates the champion by hand.
* `rollback` returns ``champion`` to the version it replaced (the ``previous_champion`` tag written at
  promotion); the rolled-back version loses ``challenger`` so the next `promote` does not bring it back.
* `list_models` summarises champion and challenger of every ``spectralgpt-*`` model.

All primary metrics (`spectralgpt.evaluation.PRIMARY_METRICS`) are higher-is-better.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from spectralgpt.evaluation.metrics import PRIMARY_METRICS
from spectralgpt.models.checkpoint import read_config
from spectralgpt.tracking.runs import (DEFAULT_EXPERIMENT, FINISHED, TAG, _sqlite_path, ensure_experiment, lineage_tags,
                                       numeric, set_fluent_uri,
                                       resolve_uri)

log = logging.getLogger(__name__)

PREFIX = "spectralgpt-"
CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "champion_history"
_TASK = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class RegistryError(RuntimeError):
    pass


def model_name(task: str) -> str:
    if not _TASK.match(task):
        raise ValueError(f"task {task!r}: use lower-case letters, digits, '-', '_' or '.' (it names the registered "
                         f"model {PREFIX}<task>)")
    return f"{PREFIX}{task}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _client(uri: str | None) -> MlflowClient:
    uri = resolve_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def registry_lock(uri: str | None, timeout: float = 600.0):
    """Serialise the registry's read-modify-write steps (new versions, aliases, history) for one store: two
    evaluations or promotions at once never interleave. The lock file lies beside a SQLite store, else in the
    temporary folder, keyed by the store's URI (processes of one host; a shared server is also re-read)."""
    from filelock import FileLock

    uri = resolve_uri(uri)
    db = _sqlite_path(uri) if uri.startswith("sqlite:") else None
    if db is not None:
        path = Path(f"{db}.registry.lock")
    else:
        path = Path(tempfile.gettempdir()) / f"spectralgpt-registry-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path), timeout=timeout):
        yield


def _set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    """Set `alias` and read it back: a registry that does not hold what was written is an error, not a
    silent success."""
    client.set_registered_model_alias(name, alias, version)
    now = _alias(client, name, alias)
    if now is None or str(now.version) != str(version):
        raise RegistryError(f"{name}: alias {alias} should point to v{version} but reads "
                            f"{'nothing' if now is None else 'v' + str(now.version)}: changed concurrently?")


def _version_of_run(client: MlflowClient, name: str, run_id: str):
    """The version of `name` already registered from `run_id` (a retried evaluation), if any."""
    try:
        found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'", max_results=10)
    except MlflowException:
        return None
    return max(found, key=lambda mv: int(mv.version)) if found else None


def _float(tags: dict, key: str) -> float | None:
    try:
        v = float(tags[key])
    except (KeyError, TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str
    primary_metric: str
    value: float
    eval_data_version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass
class PromotionDecision:
    """What `promote` decided; `decision` is "promoted", "rejected" or "unchanged" (already champion)."""

    task: str
    name: str
    decision: str
    reason: str
    challenger_version: str | None
    champion_version: str | None  # the champion before the decision
    metric: str | None
    challenger_value: float | None
    champion_value: float | None
    margin: float
    data_version: str | None
    timestamp: str = field(default_factory=_now)

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"

    def to_dict(self) -> dict:
        return {**asdict(self), "promoted": self.promoted}


@dataclass
class VersionSummary:
    version: str
    value: float | None
    data_version: str | None
    created: str
    run_id: str | None = None


@dataclass
class ModelSummary:
    name: str
    task: str
    primary_metric: str | None
    champion: VersionSummary | None
    challenger: VersionSummary | None
    versions: int


def primary_metric_for(task: str, model_dir: str | os.PathLike | None = None) -> str:
    """The task's primary metric; a task name that is not a metric task (e.g. "eurosat") uses the model's."""
    if task in PRIMARY_METRICS:
        return PRIMARY_METRICS[task]
    if model_dir is not None:
        kind = (read_config(model_dir).get("extra") or {}).get("task")
        if kind in PRIMARY_METRICS:
            return PRIMARY_METRICS[kind]
    raise ValueError(f"no primary metric known for task {task!r}: pass primary_metric= (one of "
                     f"{', '.join(sorted(set(PRIMARY_METRICS.values())))}) or save the model with extra.task")


# ------------------------------------------------------------------------------------------- register


def register(task: str, model_dir: str | os.PathLike, metrics: dict[str, Any], eval_data_version: str,
             run_id: str | None = None, *, uri: str | None = None, primary_metric: str | None = None,
             experiment: str = DEFAULT_EXPERIMENT, artifacts: str | os.PathLike | None = None,
             description: str | None = None, lineage: dict[str, Any] | None = None) -> RegisteredVersion:
    """Log `model_dir` as a pyfunc model and register it as a new version of ``spectralgpt-<task>`` with
    alias ``challenger``. The run is `run_id`, else the active run, else a new ``register-<task>`` run.

    `lineage` (content digests of the training and evaluation data, the pretrained weights, the params...)
    becomes ``lineage.*`` tags of the version, with the DVC data version and the git commit. A run that already
    registered a version (a retried evaluation) gets that version back, not a second one."""
    from spectralgpt.tracking.pyfunc import log_pyfunc

    name, model_dir = model_name(task), Path(model_dir)
    metric = primary_metric or primary_metric_for(task, model_dir)
    values = numeric(metrics)
    if metric not in values:
        raise ValueError(f"metrics lack the primary metric {metric!r} of task {task!r}; they have "
                         f"{', '.join(sorted(values)) or 'nothing numeric'}")
    uri = resolve_uri(uri)
    client = _client(uri)
    if run_id is not None and (done := _version_of_run(client, name, run_id)) is not None:
        log.info("run %s already registered %s v%s; not registering it again", run_id, name, done.version)
        with registry_lock(uri):
            if (current := _alias(client, name, CHALLENGER)) is None or int(current.version) < int(done.version):
                _set_alias(client, name, CHALLENGER, str(done.version))
        return RegisteredVersion(name, str(done.version), run_id, done.source, metric,
                                 _float(done.tags, "primary_value"), done.tags.get("eval_data_version", ""))
    own_run = False
    if run_id is None:
        active = mlflow.active_run()
        if active is not None and mlflow.get_tracking_uri() == uri:
            run_id = active.info.run_id
        else:
            exp = ensure_experiment(experiment, artifacts, uri)
            tags = {**lineage_tags(f"register-{task}", metrics), "mlflow.runName": f"register-{task}"}
            run_id = client.create_run(exp, run_name=f"register-{task}", tags=tags).info.run_id
            own_run = True
    previous = mlflow.get_tracking_uri()
    set_fluent_uri(uri)  # Model.log resolves the store from the global URI
    try:
        info = log_pyfunc(model_dir, run_id=run_id, tags={"task": task, f"{TAG}eval_data_version": eval_data_version})
        if own_run:
            client.log_batch(run_id, metrics=[mlflow.entities.Metric(k, v, 0, 0) for k, v in values.items()])
            client.set_terminated(run_id, FINISHED)
    except BaseException:
        if own_run:
            client.set_terminated(run_id, "FAILED")
        raise
    finally:
        set_fluent_uri(previous)
    tags = {"task": task, "primary_metric": metric, "primary_value": repr(values[metric]),
            "eval_data_version": str(eval_data_version), "model_dir": str(model_dir),
            "registered_at": _now(), **{f"metric.{k}": repr(v) for k, v in values.items()},
            **lineage_version_tags(lineage)}
    with registry_lock(uri):
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, tags={"task": task, "primary_metric": metric},
                                           description=f"SpectralGPT {task} model; aliases champion/challenger")
        mv = client.create_model_version(name, source=info.model_uri, run_id=run_id, tags=tags,
                                         description=description, model_id=info.model_id)
        _set_alias(client, name, CHALLENGER, str(mv.version))
    log.info("registered %s version %s (%s = %.4f on data %s) as challenger", name, mv.version, metric,
             values[metric], eval_data_version)
    return RegisteredVersion(name, str(mv.version), run_id, info.model_uri, metric, values[metric],
                             str(eval_data_version))


LINEAGE = "lineage."


def lineage_version_tags(lineage: dict[str, Any] | None) -> dict[str, str]:
    """``lineage.*`` tags of a model version: the given digests plus the DVC data version and git commit."""
    from spectralgpt.tracking.runs import data_md5, git_commit

    commit, dirty = git_commit()
    out = {"data_md5": data_md5("data.dvc"), "git_commit": commit, "git_dirty": str(dirty).lower()}
    out.update({k: v for k, v in (lineage or {}).items() if isinstance(v, (str, int, float))})
    return {f"{LINEAGE}{k}": str(v)[:4900] for k, v in out.items()}


def lineage(task: str, version: str | None = None, *, uri: str | None = None) -> dict[str, Any]:
    """The lineage chain of a registered version (default: the champion, else the challenger): which data
    (DVC version, content digests of the training and evaluation splits), which pretrained weights, which code
    and params it came from, and its score."""
    name = model_name(task)
    client = _client(uri)
    _get_model(client, name)
    if version is None:
        mv = _alias(client, name, CHAMPION) or _alias(client, name, CHALLENGER)
        if mv is None:
            raise RegistryError(f"{name} has neither a champion nor a challenger; name a version")
    else:
        try:
            mv = client.get_model_version(name, str(version))
        except MlflowException:
            raise RegistryError(f"{name} has no version {version}") from None
    aliases = [a for a in (CHAMPION, CHALLENGER) if (al := _alias(client, name, a)) and al.version == mv.version]
    return {"name": name, "version": str(mv.version), "aliases": aliases, "run_id": mv.run_id,
            "metric": mv.tags.get("primary_metric"), "value": _float(mv.tags, "primary_value"),
            "eval_data_version": mv.tags.get("eval_data_version"),
            "lineage": {k[len(LINEAGE):]: v for k, v in sorted(mv.tags.items()) if k.startswith(LINEAGE)}}


# -------------------------------------------------------------------------------------------- promote


def _alias(client: MlflowClient, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _get_model(client: MlflowClient, name: str):
    try:
        return client.get_registered_model(name)
    except MlflowException:
        raise RegistryError(f"no registered model {name} in {client.tracking_uri}; evaluate and register one "
                            "first") from None


def _history(client: MlflowClient, name: str) -> list[dict]:
    try:
        return json.loads(client.get_registered_model(name).tags.get(HISTORY_TAG, "[]"))
    except (json.JSONDecodeError, MlflowException):
        return []


def _append_history(client: MlflowClient, name: str, entry: dict, keep: int = 20) -> None:
    hist = (_history(client, name) + [entry])[-keep:]
    text = json.dumps(hist, separators=(",", ":"))
    while len(text) > 4900 and len(hist) > 1:  # tag values are limited in length
        hist = hist[1:]
        text = json.dumps(hist, separators=(",", ":"))
    client.set_registered_model_tag(name, HISTORY_TAG, text)


def _record(client: MlflowClient, d: PromotionDecision) -> None:
    tags = {"decision": d.decision, "reason": d.reason, "challenger_value": repr(d.challenger_value),
            "champion_value": repr(d.champion_value), "champion_version": str(d.champion_version),
            "margin": repr(d.margin), "metric": str(d.metric), "data_version": str(d.data_version),
            "at": d.timestamp}
    for k, v in tags.items():
        client.set_model_version_tag(d.name, d.challenger_version, f"promotion.{k}", v[:4900])


def promote(task: str, margin: float = 0.0, *, uri: str | None = None) -> PromotionDecision:
    """Apply the promotion policy to ``spectralgpt-<task>`` (see the module doc); returns the decision.
    Runs under the registry lock: the aliases it reads are the ones it replaces."""
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"margin = {margin!r}: must be a finite number >= 0")
    with registry_lock(uri):
        return _promote(task, margin, uri)


def _promote(task: str, margin: float, uri: str | None) -> PromotionDecision:
    name = model_name(task)
    client = _client(uri)
    _get_model(client, name)
    chal = _alias(client, name, CHALLENGER)
    champ = _alias(client, name, CHAMPION)
    champ_v = str(champ.version) if champ else None
    if chal is None:
        return PromotionDecision(task, name, "unchanged", "no challenger: register a newly evaluated model first",
                                 None, champ_v, None, None, None, margin, None)
    chal_v = str(chal.version)
    metric = chal.tags.get("primary_metric")
    c_val = _float(chal.tags, "primary_value")
    c_data = chal.tags.get("eval_data_version")
    if champ is not None and champ_v == chal_v:
        return PromotionDecision(task, name, "unchanged", f"version {chal_v} already is the champion",
                                 chal_v, champ_v, metric, c_val, c_val, margin, c_data)
    if champ is None:
        d = PromotionDecision(task, name, "promoted", "no champion yet", chal_v, None, metric, c_val, None,
                              margin, c_data)
    else:
        h_val, h_data = _float(champ.tags, "primary_value"), champ.tags.get("eval_data_version")
        h_metric = champ.tags.get("primary_metric")

        def reject(reason):
            return PromotionDecision(task, name, "rejected", reason, chal_v, champ_v, metric, c_val, h_val,
                                     margin, c_data)

        if h_metric != metric:
            d = reject(f"champion v{champ_v} is scored by {h_metric!r}, the challenger by {metric!r}")
        elif c_data != h_data:
            d = reject(f"not comparable: challenger evaluated on data version {c_data}, champion v{champ_v} on "
                       f"{h_data}; evaluate both on the same data")
        elif c_val is None or h_val is None:
            d = reject(f"missing {metric}: challenger {c_val}, champion {h_val}")
        elif c_val - h_val > margin:
            d = PromotionDecision(task, name, "promoted",
                                  f"{metric} {c_val:.6g} beats champion v{champ_v} {h_val:.6g} by "
                                  f"{c_val - h_val:.6g} > margin {margin:g}", chal_v, champ_v, metric, c_val,
                                  h_val, margin, c_data)
        else:
            d = reject(f"{metric} {c_val:.6g} does not beat champion v{champ_v} {h_val:.6g} by more than margin "
                       f"{margin:g}")
    _record(client, d)
    if d.promoted:
        client.set_model_version_tag(name, chal_v, "previous_champion", str(champ_v) if champ_v else "none")
        client.set_model_version_tag(name, chal_v, "champion_since", d.timestamp)
        _set_alias(client, name, CHAMPION, chal_v)
        _append_history(client, name, {"version": chal_v, "from": champ_v, "at": d.timestamp,
                                       "event": "promote"})
    log.info("%s: %s v%s (%s)", name, d.decision, chal_v, d.reason)
    return d


@dataclass
class RollbackResult:
    name: str
    from_version: str
    to_version: str
    timestamp: str = field(default_factory=_now)


def champion_to_rescore(task: str, *, uri: str | None = None) -> dict | None:
    """The champion of ``spectralgpt-<task>`` when it was scored on other evaluation data than the challenger:
    ``{"version", "model_uri", "data_version", "challenger_data_version"}``; None when there is nothing to do
    (no model, no champion or challenger, the same version, or the same data)."""
    name = model_name(task)
    client = _client(uri)
    try:
        _get_model(client, name)
    except RegistryError:
        return None
    chal, champ = _alias(client, name, CHALLENGER), _alias(client, name, CHAMPION)
    if chal is None or champ is None or str(chal.version) == str(champ.version):
        return None
    c_data, h_data = chal.tags.get("eval_data_version"), champ.tags.get("eval_data_version")
    if not c_data or c_data == h_data:
        return None
    return {"version": str(champ.version), "model_uri": f"models:/{name}/{champ.version}", "data_version": h_data,
            "challenger_data_version": c_data}


def record_rescore(task: str, version: str, metrics: dict[str, Any], eval_data_version: str, *,
                   uri: str | None = None) -> dict:
    """Record `metrics` (scored on `eval_data_version`) as version `version`'s evaluation, the previous one kept
    in the ``rescored_from`` tag and the model's history; -> {"version", "from", "to", "value", "previous_value"}."""
    name = model_name(task)
    client = _client(uri)
    with registry_lock(uri):
        mv = client.get_model_version(name, str(version))
        metric = mv.tags.get("primary_metric") or primary_metric_for(task)
        values = numeric(metrics)
        if metric not in values:
            raise ValueError(f"re-scoring {name} v{version}: metrics lack its primary metric {metric!r}")
        old = {"data_version": mv.tags.get("eval_data_version"), "value": _float(mv.tags, "primary_value"),
               "at": _now()}
        tags = {"primary_value": repr(values[metric]), "eval_data_version": str(eval_data_version),
                "rescored_from": json.dumps(old), **{f"metric.{k}": repr(v) for k, v in values.items()}}
        for k, v in tags.items():
            client.set_model_version_tag(name, str(version), k, v[:4900])
        _append_history(client, name, {"version": str(version), "at": old["at"], "event": "rescore",
                                       "from": old["data_version"], "to": str(eval_data_version)})
    log.info("%s v%s re-scored on data %s: %s %.4f (was %s on %s)", name, version, eval_data_version, metric,
             values[metric], old["value"], old["data_version"])
    return {"version": str(version), "from": old["data_version"], "to": str(eval_data_version),
            "value": values[metric], "previous_value": old["value"]}


def rollback(task: str, *, uri: str | None = None) -> RollbackResult:
    """Return ``champion`` to the version it replaced; raises `RegistryError` when there is none."""
    with registry_lock(uri):
        return _rollback(task, uri)


def _rollback(task: str, uri: str | None) -> RollbackResult:
    name = model_name(task)
    client = _client(uri)
    _get_model(client, name)
    champ = _alias(client, name, CHAMPION)
    if champ is None:
        raise RegistryError(f"{name} has no champion to roll back")
    prev = champ.tags.get("previous_champion")
    if not prev or prev == "none":
        raise RegistryError(f"{name} champion v{champ.version} replaced no earlier champion; nothing to roll back to")
    try:
        client.get_model_version(name, prev)
    except MlflowException:
        raise RegistryError(f"{name}: previous champion v{prev} no longer exists") from None
    now = _now()
    _set_alias(client, name, CHAMPION, prev)
    client.set_model_version_tag(name, champ.version, "rolled_back_at", now)
    client.set_model_version_tag(name, champ.version, "rolled_back_to", prev)
    client.set_model_version_tag(name, prev, "restored_at", now)
    chal = _alias(client, name, CHALLENGER)
    if chal is not None and chal.version == champ.version:
        client.delete_registered_model_alias(name, CHALLENGER)
    _append_history(client, name, {"version": prev, "from": champ.version, "at": now, "event": "rollback"})
    log.info("%s: champion rolled back from v%s to v%s", name, champ.version, prev)
    return RollbackResult(name, str(champ.version), str(prev), now)


# ----------------------------------------------------------------------------------------------- list


def _summary(mv) -> VersionSummary | None:
    if mv is None:
        return None
    created = datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc).isoformat(timespec="seconds")
    return VersionSummary(str(mv.version), _float(mv.tags, "primary_value"), mv.tags.get("eval_data_version"),
                          created, mv.run_id)


def list_models(*, uri: str | None = None) -> list[ModelSummary]:
    """Champion and challenger (with their primary metric) of every ``spectralgpt-*`` registered model."""
    client = _client(uri)
    out, token = [], None
    while True:
        page = client.search_registered_models(filter_string=f"name LIKE '{PREFIX}%'", max_results=100,
                                               page_token=token)
        for rm in page:
            aliases = rm.aliases or {}
            champ = client.get_model_version(rm.name, aliases[CHAMPION]) if CHAMPION in aliases else None
            chal = client.get_model_version(rm.name, aliases[CHALLENGER]) if CHALLENGER in aliases else None
            n = len(client.search_model_versions(f"name = '{rm.name}'", max_results=1000))
            out.append(ModelSummary(rm.name, rm.tags.get("task", rm.name[len(PREFIX):]), rm.tags.get("primary_metric"),
                                    _summary(champ), _summary(chal), n))
        token = page.token
        if not token:
            break
    return sorted(out, key=lambda m: m.name)


def download(uri: str, dst: str | os.PathLike | None = None, *, tracking_uri: str | None = None) -> Path:
    """Fetch the artifacts behind a ``models:/...`` or ``runs:/...`` URI to a local folder (from the store
    `tracking_uri`, else MLflow's current one)."""
    import mlflow.artifacts

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=None if dst is None else str(dst),
                                                    tracking_uri=tracking_uri and resolve_uri(tracking_uri)))
