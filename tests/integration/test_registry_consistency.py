"""Registry writes that stay consistent: a retried evaluation never registers a second version, concurrent
promotions of one task serialise under the registry lock, and a version carries its lineage."""
# ruff: noqa: F811  (pytest fixtures imported from tracking_helpers are redefined as arguments)

import subprocess
import sys
import textwrap
from pathlib import Path

from mlflow import MlflowClient
from tracking_helpers import empty_store_db, store, tiny_model_dir  # noqa: F401 (fixtures)

from spectralgpt.tracking import lineage, promote, register

REPO = Path(__file__).resolve().parents[2]


def test_a_retried_registration_returns_the_same_version(store, tmp_path):
    model = tiny_model_dir(tmp_path / "model")
    client = MlflowClient(store)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    digests = {"train_digest": "t" * 64, "eval_digest": "e" * 64, "pretrained_digest": "p" * 64}
    first = register("classification", model, {"overall_accuracy": 0.7}, "e" * 64, run_id, lineage=digests)
    again = register("classification", model, {"overall_accuracy": 0.7}, "e" * 64, run_id, lineage=digests)
    assert again.version == first.version
    assert len(client.search_model_versions("name = 'spectralgpt-classification'")) == 1
    chain = lineage("classification", uri=store)
    assert chain["version"] == first.version and chain["aliases"] == ["challenger"]
    assert chain["lineage"]["train_digest"] == "t" * 64 and chain["lineage"]["pretrained_digest"] == "p" * 64
    assert {"data_md5", "git_commit"} <= set(chain["lineage"])


def test_concurrent_promotions_serialise(store, tmp_path):
    """Two processes promote the same task at once: one promotes, the other finds it already done."""
    model = tiny_model_dir(tmp_path / "model")
    register("classification", model, {"overall_accuracy": 0.5}, "d1")
    assert promote("classification").promoted
    register("classification", model, {"overall_accuracy": 0.9}, "d1")
    script = textwrap.dedent(f"""
        import json
        from spectralgpt.tracking import promote
        print(json.dumps(promote("classification", uri={store!r}).decision))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true"})
             for _ in range(2)]
    decisions = sorted(p.communicate(timeout=240)[0].strip().splitlines()[-1].strip('"') for p in procs)
    assert decisions == ["promoted", "unchanged"]  # never two promotions from the same champion
    mv = MlflowClient(store).get_model_version_by_alias("spectralgpt-classification", "champion")
    assert str(mv.version) == "2" and mv.tags["previous_champion"] == "1"
