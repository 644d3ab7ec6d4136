"""The preprocess flow on a local Dask cluster (prefect-dask's DaskTaskRunner, 2 worker processes) writes the
same bytes as on the default thread runner; `preprocess.runner` is validated before any work."""

import os
from pathlib import Path

import pytest
from pipeline_helpers import tiny_params, write_params

pytest.importorskip("prefect_dask")

from flows.ingest import ingest_flow  # noqa: E402
from flows.preprocess import preprocess_flow  # noqa: E402
from spectralgpt.config import ConfigError, load_params  # noqa: E402
from spectralgpt.data.synthetic import generate_demo_corpus  # noqa: E402


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workspace(prefect_api, tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    before = Path.cwd()
    os.chdir(root)
    try:
        base = tiny_params(f"sqlite:///{root}/mlflow.db", str(root / "mlartifacts"))
        base["preprocess"]["shard_size"] = 16  # several shards per corpus, so both workers get some
        # the whole pretraining corpus and a two-date task corpus stored per split are enough to compare
        base["data"]["sources"] = {k: v for k, v in base["data"]["sources"].items() if k in ("pretrain", "change")}
        base["finetune"] = {k: v for k, v in base["finetune"].items() if v["task"] == "change"}
        write_params(root / "params.yaml", base)
        generate_demo_corpus("data/raw", scale="tiny")
        ingest_flow("params.yaml")
        yield root, base
    finally:
        os.chdir(before)


def test_local_dask_cluster_writes_byte_identical_shards(workspace):
    root, base = workspace
    threads = {**base, "data": {**base["data"], "shards": "data/shards-threads"}}
    dask = {**base, "data": {**base["data"], "shards": "data/shards-dask"},
            "preprocess": {**base["preprocess"], "runner": {"kind": "dask", "workers": 2}}}
    write_params(root / "threads.yaml", threads)
    write_params(root / "dask.yaml", dask)
    a = preprocess_flow("threads.yaml")
    b = preprocess_flow("dask.yaml")
    assert a == b and len(a) >= 3
    ta, tb = _tree(root / "data/shards-threads"), _tree(root / "data/shards-dask")
    assert len(ta) > 20 and ta.keys() == tb.keys()
    assert [k for k in ta if ta[k] != tb[k]] == []


@pytest.mark.parametrize("runner, message", [
    ({"kind": "ray"}, "preprocess.runner.kind"),
    ({"kind": "threads", "address": "tcp://10.0.0.1:8786"}, "only used with kind: dask"),
    ({"kind": "dask", "address": "http://scheduler:8786"}, "not a Dask scheduler address"),
    ({"kind": "dask", "workers": 0}, "preprocess.runner.workers"),
])
def test_runner_settings_are_validated(tmp_path, runner, message):
    p = tiny_params("sqlite:///x.db", "a")
    p["preprocess"]["runner"] = runner
    with pytest.raises(ConfigError, match=message):
        load_params(write_params(tmp_path / "params.yaml", p))
