"""Ingest and preprocess on Dask through prefect-dask's DaskTaskRunner: a local cluster of 2 worker processes (null
address) and an existing cluster (an address) write the same bytes as the default thread runner; each sample is
decoded once (ingest opens headers only; preprocessing reads every file's pixels exactly once, counted by a
rasterio-level file-access counter in every process); `<stage>.runner` is validated before any work."""

import os
from pathlib import Path

import pytest
import read_counter
from pipeline_helpers import tiny_params, write_params

pytest.importorskip("prefect_dask")

from flows.ingest import ingest_flow  # noqa: E402
from flows.preprocess import preprocess_flow  # noqa: E402
from spectralgpt.config import ConfigError, load_params  # noqa: E402
from spectralgpt.data.synthetic import generate_demo_corpus  # noqa: E402


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _with(base: dict, **sections) -> dict:
    return {**base, **{k: {**base[k], **v} for k, v in sections.items()}}


@pytest.fixture(scope="module")
def workspace(prefect_api, tmp_path_factory):
    from distributed import Client, LocalCluster

    root = tmp_path_factory.mktemp("dask")
    before = Path.cwd()
    os.chdir(root)
    logs = root / "reads"
    logs.mkdir()
    try:
        base = tiny_params(f"sqlite:///{root}/mlflow.db", str(root / "mlartifacts"))
        base["preprocess"]["shard_size"] = 16  # several shards per corpus, so both workers get some
        # the whole pretraining corpus and a two-date task corpus stored per split are enough to compare
        base["data"]["sources"] = {k: v for k, v in base["data"]["sources"].items() if k in ("pretrain", "change")}
        base["finetune"] = {k: v for k, v in base["finetune"].items() if v["task"] == "change"}
        dask = {"kind": "dask", "workers": 2}
        write_params(root / "params.yaml", base)
        write_params(root / "ingest-dask.yaml", _with(base, data={"interim": "data/interim-dask"},
                                                      ingest={"runner": dask}))
        write_params(root / "threads.yaml", _with(base, data={"shards": "data/shards-threads"}))
        generate_demo_corpus("data/raw", scale="tiny")
        out = {"base": base}
        read_counter.install(logs / "ingest.log")  # this process: the thread runner's tasks
        try:
            out["ingest"] = ingest_flow("params.yaml")
            read_counter.install(logs / "preprocess-threads.log")
            out["threads"] = preprocess_flow("threads.yaml")
        finally:
            read_counter.uninstall()
        out["ingest-dask"] = ingest_flow("ingest-dask.yaml")  # a local cluster the runner starts (null address)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            pids = client.run(read_counter.install, str(logs / "preprocess-dask.log"))
            at = {"runner": {"kind": "dask", "address": cluster.scheduler_address}}  # an existing cluster
            write_params(root / "dask.yaml", _with(base, data={"shards": "data/shards-dask"}, preprocess=at))
            out["dask"] = preprocess_flow("dask.yaml")
        out["workers"] = set(pids.values())
        yield root, out
    finally:
        os.chdir(before)


def test_ingest_on_a_local_dask_cluster_writes_the_same_manifests(workspace):
    root, out = workspace
    assert out["ingest"] == out["ingest-dask"] and out["ingest"]["pretrain"]["n_good"] > 20
    a, b = _tree(root / "data/interim"), _tree(root / "data/interim-dask")
    assert a.keys() == b.keys() == {"pretrain/manifest.json", "change/manifest.json"}
    assert [k for k in a if a[k] != b[k]] == []


def test_each_sample_is_decoded_once(workspace):
    root, out = workspace
    pretrain = {str(p) for p in (root / "data/raw/pretrain").rglob("*.tif")}
    # ingest: the cheap checks open each one-file sample's header and decode no pixel
    assert read_counter.counts(root / "reads/ingest.log", "read") == {}
    assert read_counter.counts(root / "reads/ingest.log", "open") == dict.fromkeys(pretrain, 1)
    # preprocessing: every file's pixels are read exactly once, whichever runner (the Dask workers counted their own)
    for log in ("preprocess-threads.log", "preprocess-dask.log"):
        reads = read_counter.counts(root / "reads" / log)
        assert set(reads.values()) == {1}, {p: n for p, n in reads.items() if n != 1}
        assert pretrain <= set(reads), "a pretraining image was not read"
        oscd = {p for p in reads if "/oscd/" in p}  # per city: 12 band files of each date and the change mask
        assert len(oscd) == out["ingest"]["change"]["n_listed"] * (2 * 12 + 1)
    assert len(out["workers"]) == 2


def test_runners_write_byte_identical_shards(workspace):
    root, out = workspace
    a, b = out["threads"], out["dask"]
    assert a == b and len(a) >= 3
    ta, tb = _tree(root / "data/shards-threads"), _tree(root / "data/shards-dask")
    assert len(ta) > 20 and ta.keys() == tb.keys()
    assert [k for k in ta if ta[k] != tb[k]] == []
    reports = {k for k in ta if k.startswith("quarantine/")}  # the corpora's quarantine reports, the same bytes too
    assert reports == {f"quarantine/{c}.{e}" for c in ("pretrain", "change") for e in ("json", "csv")}


@pytest.mark.parametrize("stage", ["ingest", "preprocess"])
@pytest.mark.parametrize("runner, message", [
    ({"kind": "ray"}, "runner.kind"),
    ({"kind": "threads", "address": "tcp://10.0.0.1:8786"}, "only used with kind: dask"),
    ({"kind": "dask", "address": "http://scheduler:8786"}, "not a Dask scheduler address"),
    ({"kind": "dask", "workers": 0}, "runner.workers"),
])
def test_runner_settings_are_validated(tmp_path, stage, runner, message):
    p = tiny_params("sqlite:///x.db", "a")
    p[stage]["runner"] = runner
    with pytest.raises(ConfigError, match=message):
        load_params(write_params(tmp_path / "params.yaml", p))


def test_the_local_cluster_runs_its_workers_without_the_statistical_profiler():
    """A Dask worker samples its task threads every 10 ms and keeps the last 1,000 one-second profiles for the
    dashboard: memory that grows with the run (tens of MiB). The cluster a null address starts has no dashboard,
    so its workers run without the profiler; a cluster started with Dask's defaults has it."""
    from distributed import Client, LocalCluster

    from flows.runners import task_runner
    from spectralgpt.config import RunnerConfig

    def profiled(dask_worker) -> bool:
        return "profile" in dask_worker.periodic_callbacks

    ours = task_runner(RunnerConfig(kind="dask", workers=2), 2).cluster_kwargs
    defaults = {k: v for k, v in ours.items() if k != "config"}
    for kwargs, expected in ((ours, False), (defaults, True)):
        with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
            assert set(client.run(profiled).values()) == {expected}
