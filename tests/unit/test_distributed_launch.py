"""The torchrun command line: nodes, node rank and rendezvous from params, environment and flags; bad values refused."""

import sys

import pytest
import yaml

from spectralgpt.config import ConfigError, DistributedConfig, load_params
from spectralgpt.training.distributed import torchrun_command

ENTRY = ["-m", "spectralgpt.cli", "pretrain", "--params", "params.yaml"]


def arg(cmd, flag):
    return cmd[cmd.index(flag) + 1]


def test_one_node_defaults_to_standalone():
    cmd = torchrun_command(DistributedConfig(nproc_per_node=4), ENTRY)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert arg(cmd, "--nnodes") == "1" and arg(cmd, "--nproc-per-node") == "4" and "--standalone" in cmd
    assert cmd[-len(ENTRY):] == ENTRY


def test_c10d_rendezvous_settings_reach_torchrun():
    d = DistributedConfig(nproc_per_node=8, nnodes=4, node_rank=2, rdzv_endpoint="10.0.0.5:29400", rdzv_id="job-17",
                          join_timeout=120, max_restarts=3)
    cmd = torchrun_command(d, ENTRY, python="python")
    assert arg(cmd, "--nnodes") == "4" and arg(cmd, "--nproc-per-node") == "8"
    assert arg(cmd, "--rdzv-backend") == "c10d" and arg(cmd, "--rdzv-endpoint") == "10.0.0.5:29400"
    assert arg(cmd, "--rdzv-id") == "job-17" and arg(cmd, "--rdzv-conf") == "join_timeout=120"
    assert arg(cmd, "--max-restarts") == "3"
    assert "--node-rank" not in cmd and "--standalone" not in cmd  # c10d assigns ranks; torchrun ignores it
    assert cmd.index("--rdzv-id") < cmd.index("-m", 3) and cmd[-len(ENTRY):] == ENTRY
    assert d.world_size == 32


@pytest.mark.parametrize("endpoint, addr", [("head.cluster:29500", "head.cluster"), ("[fd00::5]:29500", "fd00::5")])
def test_static_rendezvous_passes_node_rank_and_master(endpoint, addr):
    d = DistributedConfig(nproc_per_node=2, nnodes=2, node_rank=1, rdzv_backend="static", rdzv_endpoint=endpoint)
    cmd = torchrun_command(d, ENTRY)
    assert arg(cmd, "--rdzv-backend") == "static" and arg(cmd, "--node-rank") == "1"
    assert arg(cmd, "--master-addr") == addr and arg(cmd, "--master-port") == "29500"
    assert "--rdzv-endpoint" not in cmd


def test_environment_over_params_and_flags_over_environment():
    d = DistributedConfig(nproc_per_node=2, nnodes=2, rdzv_endpoint="a:1")
    env = {"SPECTRALGPT_NNODES": "3", "SPECTRALGPT_NODE_RANK": "2", "SPECTRALGPT_RDZV_ENDPOINT": "head:29400",
           "SPECTRALGPT_RDZV_ID": "weekly-42", "SPECTRALGPT_NPROC": "4", "SPECTRALGPT_RDZV_BACKEND": "static"}
    r = d.resolved(env)
    assert (r.nnodes, r.node_rank, r.rdzv_endpoint, r.rdzv_id, r.nproc_per_node, r.rdzv_backend) == \
        (3, 2, "head:29400", "weekly-42", 4, "static")
    assert d.resolved(env, nproc_per_node=8).nproc_per_node == 8
    assert d.resolved({"SPECTRALGPT_NNODES": ""}) == d  # empty variables are unset
    assert d.resolved({}) == d


@pytest.mark.parametrize("kw, words", [
    ({"nnodes": 2, "node_rank": 2, "rdzv_endpoint": "h:1"}, ["node_rank = 2", "below nnodes = 2"]),
    ({"nnodes": 2}, ["nnodes = 2 needs rdzv_endpoint"]),
    ({"rdzv_endpoint": "10.0.0.5"}, ["rdzv_endpoint", "'10.0.0.5'", "host:port"]),
    ({"rdzv_endpoint": "h:70000"}, ["'h:70000'", "1-65535"]),
    ({"rdzv_backend": "etcd"}, ["rdzv_backend", "'etcd'", "c10d", "static"]),
    ({"nproc_per_node": 0}, ["nproc_per_node", "greater than or equal to 1"]),
    ({"rdzv_id": "a b"}, ["rdzv_id", "'a b'"]),
])
def test_invalid_settings_are_refused_with_a_clear_message(tmp_path, kw, words):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"pretrain": {"stages": [{"name": "s", "img_size": 32, "epochs": 1}],
                                              "distributed": kw}}))
    with pytest.raises(ConfigError) as e:
        load_params(p)
    assert "pretrain.distributed" in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError) as e:
        DistributedConfig().resolved({"SPECTRALGPT_NNODES": "two"})
    assert "nnodes" in str(e.value) and "SPECTRALGPT_NNODES='two'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        DistributedConfig().resolved({"SPECTRALGPT_NNODES": "2", "SPECTRALGPT_RDZV_ENDPOINT": "h:1",
                                      "SPECTRALGPT_NODE_RANK": "5"})
    assert "node_rank = 5 must be below nnodes = 2" in str(e.value) and "SPECTRALGPT_NODE_RANK='5'" in str(e.value)


def test_params_section_round_trips(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"pretrain": {"stages": [{"name": "s", "img_size": 32, "epochs": 1}],
                                              "distributed": {"nnodes": 2, "nproc_per_node": 8,
                                                              "rdzv_endpoint": "10.0.0.5:29400"}}}))
    d = load_params(p).pretrain.distributed
    assert (d.nnodes, d.nproc_per_node, d.node_rank, d.rdzv_backend, d.world_size) == (2, 8, 0, "c10d", 16)
