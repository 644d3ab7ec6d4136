"""Retrain: the scheduled job. Check the data version, let DVC decide what is stale and reproduce it
(`dvc repro`, every stage nested under one MLflow pipeline run; with ``jobs`` > 1 independent stages run side by
side first, `flows.lanes`), then apply the promotion policy to each task's
new challenger (a champion scored on an older test set is scored again on the current one first) and report every decision (Prefect artifacts: a table, links to the MLflow pages).

A profile (``params_path`` other than ``params.yaml``, e.g. ``params/base.yaml``) is applied as the workspace's
``params.yaml`` before anything runs, because every DVC stage reads ``params.yaml``; DVC then sees the changed
params and reruns what depends on them. It never overwrites a person's edits (`apply_profile`) and stays applied
afterwards, as ``dvc exp apply`` leaves an experiment: ``git checkout params.yaml`` returns to the committed one.

One retrain at a time per repository, however started (deployment, ``python -m flows.retrain``, a test): the
flow holds an exclusive lock (``.dvc/tmp/retrain.lock``) around the profile, ``dvc repro``, promotion and push.
A second run waits up to ``wait_seconds``, then is skipped with a log line naming the holder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import check_prefect, params
from flows.lanes import affected, pipeline, run_lanes, stream_dvc
from spectralgpt.config import TASKS, load_params
from spectralgpt.io.atomic import atomic_write_bytes, atomic_write_text

WORKSPACE_PARAMS = Path("params.yaml")
LOCK = Path(".dvc/tmp/retrain.lock")  # .dvc/tmp is ignored by git (.dvc/.gitignore) and by DVC
APPLIED = Path(".dvc/tmp/applied-profile.json")  # the digest of the last profile written to params.yaml
DEFAULT_WAIT_SECONDS = 4 * 3600.0


class ProfileError(RuntimeError):
    """The profile cannot be applied without losing someone's params.yaml; the message says what to do."""


def dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dvc", *args]
    return subprocess.run(cmd, check=True, text=True, capture_output=capture, env=os.environ.copy())


# --------------------------------------------------------------------------------------------- profile


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_state(path: Path) -> str:
    """"clean", "modified" (uncommitted or staged changes), "untracked" or "unknown" (no git here)."""
    try:
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "--", path.name], cwd=path.parent,
                                 capture_output=True, text=True, timeout=30)
        if tracked.returncode != 0:
            inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=path.parent,
                                    capture_output=True, text=True, timeout=30)
            return "untracked" if inside.returncode == 0 else "unknown"
        status = subprocess.run(["git", "status", "--porcelain", "--", path.name], cwd=path.parent,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if status.returncode != 0:
        return "unknown"
    return "modified" if status.stdout.strip() else "clean"


def _last_applied(applied: Path) -> str | None:
    try:
        return json.loads(applied.read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None


def apply_profile(profile: str | os.PathLike, workspace: str | os.PathLike = WORKSPACE_PARAMS,
                  applied: str | os.PathLike = APPLIED) -> bool:
    """Make `workspace` (params.yaml) byte-equal to `profile`; returns whether it changed.

    The profile is validated first (a bad one fails naming the field, nothing changes). params.yaml is replaced
    only when it holds nothing of a person's own: it is committed and unchanged in git, or it is exactly what an
    earlier profile wrote (recorded in `applied`). Uncommitted edits, or an untracked params.yaml that differs,
    raise `ProfileError` and leave it untouched. The write is atomic.
    """
    profile, workspace, applied = Path(profile), Path(workspace), Path(applied)
    if profile.resolve() == workspace.resolve():
        return False
    load_params(profile)
    text = profile.read_bytes()
    current = workspace.read_bytes() if workspace.exists() else None
    if current == text:
        return False
    if current is not None and _sha256(current) != _last_applied(applied):
        state = git_state(workspace)
        if state != "clean":
            raise ProfileError(
                f"{workspace} has {'uncommitted changes' if state == 'modified' else state + ' content'} "
                f"(git: {state}); refusing to replace it with the profile {profile}. Commit or stash your edits "
                f"(or `git checkout {workspace}`), then run again.")
    atomic_write_bytes(workspace, text)
    applied.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(applied, json.dumps({"profile": str(profile), "sha256": _sha256(text),
                                           "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}))
    return True


# ------------------------------------------------------------------------------------------------ lock


class RetrainLock:
    """An exclusive, inter-process lock for one repository's retrain (an OS file lock, released by the kernel
    even when the holder is killed). The holder writes who it is beside the lock, for the message a waiter logs."""

    def __init__(self, path: str | os.PathLike = LOCK):
        self.path = Path(path)
        self.holder_path = self.path.with_name(self.path.name + ".holder.json")
        self._lock = FileLock(str(self.path))

    def acquire(self, wait_seconds: float, owner: dict | None = None) -> bool:
        """Take the lock, waiting up to `wait_seconds` (0: one try); False when another run still holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=max(0.0, float(wait_seconds)), poll_interval=0.5)
        except Timeout:
            return False
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **(owner or {})}
        atomic_write_text(self.holder_path, json.dumps(info))
        return True

    def holder(self) -> str:
        """"since <time>, pid <pid> on <host>" of the run holding the lock, as it recorded itself."""
        try:
            h = json.loads(self.holder_path.read_text())
        except (OSError, ValueError):
            return "(holder unknown)"
        run = f", flow run {h['flow_run_id']}" if h.get("flow_run_id") else ""
        return f"since {h.get('since')}, pid {h.get('pid')} on {h.get('host')}{run}"

    def release(self) -> None:
        self.holder_path.unlink(missing_ok=True)
        self._lock.release()


# ------------------------------------------------------------------------------------------------ tasks


@task(cache_policy=NO_CACHE)
def data_version(path: str = "data.dvc") -> str:
    from spectralgpt.tracking.runs import data_md5

    return data_md5(path)


@task(cache_policy=NO_CACHE)
def stale_stages() -> list[str]:
    out = dvc("status", "--json", capture=True).stdout
    return sorted(json.loads(out or "{}"))


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30)
def reproduce(pull: bool) -> None:
    if pull:
        dvc("pull", "--allow-missing")
    if code := stream_dvc("repro"):
        raise RuntimeError(f"dvc repro failed with exit code {code}; the completed stages are kept "
                           "(run the retrain flow or `dvc repro` again to resume)")


@task(cache_policy=NO_CACHE, task_run_name="rescore-champion-{task_name}")
def rescore_champion(p, task_name: str, uri: str) -> dict | None:
    """A changed test set: the champion is scored again on the challenger's evaluation data (recorded on the
    champion), so promotion compares the two on the same data."""
    from spectralgpt.inference.resolve import find_model_folder
    from spectralgpt.stages.evaluate import score
    from spectralgpt.tracking import champion_to_rescore, download, record_rescore

    ref = champion_to_rescore(task_name, uri=uri)
    if ref is None:
        return None
    log = get_run_logger()
    log.info("%s: the champion v%s was scored on data %s, the challenger on %s: scoring the champion again",
             task_name, ref["version"], ref["data_version"], ref["challenger_data_version"])
    with tempfile.TemporaryDirectory(prefix="rescore-") as tmp:
        metrics = score(p, task_name, find_model_folder(download(ref["model_uri"], tmp, tracking_uri=uri)))
    if metrics["data_version"] != ref["challenger_data_version"]:
        log.warning("%s: the evaluation split now has data version %s, not the challenger's %s; promotion will say "
                    "so", task_name, metrics["data_version"], ref["challenger_data_version"])
    return record_rescore(task_name, ref["version"], metrics, metrics["data_version"], uri=uri)


@task(cache_policy=NO_CACHE)
def promote_task(task_name: str, margin: float, uri: str) -> dict:
    from spectralgpt.tracking import RegistryError, promote

    try:
        return promote(task_name, margin, uri=uri).to_dict()
    except RegistryError as e:
        return {"task": task_name, "decision": "error", "reason": str(e)}


# ----------------------------------------------------------------------------------------------- report


def _cell(v) -> str:
    return "-" if v is None or v == "" else (f"{v:.4f}" if isinstance(v, float) else str(v))


def decision_rows(decisions: list[dict]) -> list[dict]:
    """One row per task for the table artifact: what was decided, why, and both scores."""
    return [{"task": d.get("task"), "decision": d.get("decision"), "reason": d.get("reason", ""),
             "challenger": _cell(d.get("challenger_version") and f"v{d['challenger_version']}"),
             "challenger value": _cell(d.get("challenger_value")),
             "champion": _cell(d.get("champion_version") and f"v{d['champion_version']}"),
             "champion value": _cell(d.get("champion_value")), "metric": _cell(d.get("metric")),
             "data version": _cell(d.get("data_version"))} for d in decisions]


def _key(text: str) -> str:
    """An artifact key (lowercase letters, digits, dashes)."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


@task(cache_policy=NO_CACHE)
def publish_report(version: str, stale: list[str], decisions: list[dict], run_id: str, uri: str,
                   profile: str) -> None:
    """The retrain report in the Prefect UI: a table of decisions and scores, links to the MLflow pipeline run and
    to each model version a decision names, and a short markdown summary."""
    from spectralgpt.tracking.runs import model_version_ui_url, run_ui_url

    create_table_artifact(key="retrain-decisions", table=decision_rows(decisions),
                          description=f"promotion decisions on data {version} (profile {profile})")
    create_link_artifact(key="mlflow-pipeline-run", link=run_ui_url(run_id, uri), link_text=f"MLflow run {run_id}",
                         description="the MLflow pipeline run of this retrain (stage runs nested under it)")
    for d in decisions:
        for role in ("challenger", "champion"):
            v = d.get(f"{role}_version")
            if v and d.get("name"):
                create_link_artifact(key=_key(f"{d['name']}-{role}"), link=model_version_ui_url(d["name"], v, uri),
                                     link_text=f"{d['name']} v{v}", description=f"{d['task']}: {role} version")
    rows = "\n".join(f"| {d.get('task')} | {d.get('decision')} | {d.get('reason', '')} |" for d in decisions)
    create_markdown_artifact(key="retrain-report", description="stages reproduced and promotion decisions",
                             markdown=f"## Retrain on data {version}\n\nProfile: `{profile}`. Stale before the "
                                      f"run: {', '.join(stale) or 'nothing'}\n\n| task | decision | reason |\n"
                                      f"| --- | --- | --- |\n{rows}\n")


# ------------------------------------------------------------------------------------------------- flow


def _retrain(params_path: str, promote: bool, pull: bool, push: bool, jobs: int = 1) -> dict:
    """The work the lock protects: profile, dvc repro (in `jobs` lanes), promotion, push, report."""
    from spectralgpt.tracking import pipeline_run
    from spectralgpt.tracking.runs import resolve_uri

    log = get_run_logger()
    if apply_profile(params_path):
        log.info("profile %s applied as %s (the committed one: `git checkout %s`)", params_path, WORKSPACE_PARAMS,
                 WORKSPACE_PARAMS)
    p = params(WORKSPACE_PARAMS)
    t = p.tracking
    version = data_version()
    stale = stale_stages()
    log.info("data version %s; stale: %s", version, ", ".join(stale) or "nothing")
    with pipeline_run("retrain", {"params": params_path, "stale": stale}, {"data_version": version}, uri=t.uri,
                      experiment=t.experiment, artifacts=t.artifacts) as run:
        if jobs > 1 and stale:
            if pull:
                dvc("pull", "--allow-missing")
            ran = run_lanes(affected(pipeline(), stale), jobs)
            log.info("%d stage(s) checked in %d lanes: %s", len(ran), jobs, ", ".join(ran))
            pull = False
        reproduce(pull)  # the whole pipeline; after the lanes it finds nothing left to do
        decisions = []
        for name in (p.finetune if promote else []):
            rescored = rescore_champion(p, name, t.uri)
            decisions.append({**promote_task(name, p.promote.margin, t.uri), **({"rescored": rescored} if rescored
                                                                                  else {})})
        if push:
            dvc("push")
        run.log_dict({"data_version": version, "stale": stale, "decisions": decisions}, "retrain.json")
    publish_report(version, stale, decisions, run.run_id, resolve_uri(t.uri), params_path)
    for d in decisions:
        log.info("%s: %s (%s)", d.get("task"), d.get("decision"), d.get("reason", ""))
    return {"skipped": False, "profile": params_path, "data_version": version, "stale": stale,
            "decisions": decisions, "pipeline_run_id": run.run_id, "tasks": list(TASKS)}


@flow(name="retrain")
def retrain_flow(params_path: str = "params.yaml", promote: bool = True, pull: bool = False, push: bool = False,
                 wait_seconds: float = DEFAULT_WAIT_SECONDS, jobs: int = 1) -> dict:
    """Reproduce what is stale and promote; skipped (``{"skipped": True, ...}``) when another retrain of this
    repository still holds the lock after `wait_seconds`. `jobs` > 1 runs independent stages side by side in that
    many lanes, sharing the cores (`flows.lanes`); 1 is one `dvc repro`."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    from prefect.runtime import flow_run

    log = get_run_logger()
    lock, owner = RetrainLock(LOCK), {"flow_run_id": str(flow_run.id or "")}
    acquired = lock.acquire(0, owner)
    if not acquired:
        log.info("another retrain holds the lock %s; waiting up to %.0f s", lock.holder(), wait_seconds)
        acquired = lock.acquire(wait_seconds, owner)
    if not acquired:
        reason = f"another retrain holds the lock {lock.holder()}; skipped after waiting {wait_seconds:.0f} s"
        log.warning(reason)
        return {"skipped": True, "reason": reason, "profile": params_path}
    try:
        return _retrain(params_path, promote, pull, push, jobs)
    finally:
        lock.release()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="params profile, applied as params.yaml")
    ap.add_argument("--no-promote", action="store_true")
    ap.add_argument("--pull", action="store_true", help="dvc pull before reproducing")
    ap.add_argument("--push", action="store_true", help="dvc push the new outputs")
    ap.add_argument("--wait-seconds", type=float, default=DEFAULT_WAIT_SECONDS,
                    help="how long to wait for another retrain of this repository before skipping")
    ap.add_argument("--jobs", type=int, default=1,
                    help="run independent stages side by side in this many lanes, sharing the cores (default 1)")
    a = ap.parse_args()
    check_prefect()
    retrain_flow(a.params, not a.no_promote, a.pull, a.push, a.wait_seconds, a.jobs)
