"""Multi-node training: 2 "nodes" x 1 process meeting at a c10d rendezvous on 127.0.0.1 end with the same weights
as one node running 2 processes. Both command lines come from `torchrun_command`, as the pretrain flow's do."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from spectralgpt.config import DistributedConfig
from spectralgpt.training.distributed import torchrun_command

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "scripts" / "train_tiny.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
       "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # gloo on CPU
TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(d: DistributedConfig, out: Path, log: Path) -> subprocess.Popen:
    cmd = torchrun_command(d, [str(SCRIPT), str(out), "mae", "3", "4"])
    return subprocess.Popen(cmd, env=ENV, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own process group: torchrun and its workers


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts its workers in sessions of their own)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    found, todo = [], [pid]
    while todo:
        pid = todo.pop()
        kids = [c for c, pp in parent.items() if pp == pid]
        found += kids
        todo += kids
    return found


def kill(p: subprocess.Popen) -> None:
    """SIGKILL a launcher's process group and all its workers."""
    if p.poll() is not None:
        return
    for pid in [*descendants(p.pid), p.pid]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    p.wait()


def finish(procs: list[subprocess.Popen], logs: list[Path]) -> None:
    """Wait for every launcher, all within TIMEOUT; as soon as one fails (or time is up) kill all their groups."""
    deadline = time.monotonic() + TIMEOUT
    while any(p.poll() is None for p in procs) and all(p.returncode in (None, 0) for p in procs):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if any(p.returncode != 0 for p in procs):
        for p in procs:
            kill(p)
        tails = "\n".join(f"--- {log.name} (rc {p.returncode})\n{log.read_text()[-3000:]}" for p, log in zip(procs, logs))
        pytest.fail(f"torchrun failed or ran past {TIMEOUT}s:\n{tails}")


def weights(out: Path) -> dict:
    return torch.load(out / "final.pt", weights_only=True)


def test_two_nodes_with_c10d_rendezvous_match_one_node_with_two_processes(tmp_path):
    single = tmp_path / "one-node"
    log = tmp_path / "one-node.log"
    finish([start(DistributedConfig(nproc_per_node=2), single, log)], [log])

    nodes = tmp_path / "two-nodes"  # both nodes write to one folder, as on a shared file system
    endpoint, job = f"127.0.0.1:{free_port()}", f"test-{os.getpid()}"
    logs = [tmp_path / f"node{r}.log" for r in (0, 1)]
    settings = [DistributedConfig(nnodes=2, node_rank=r, nproc_per_node=1, rdzv_backend="c10d",
                                  rdzv_endpoint=endpoint, rdzv_id=job, join_timeout=120) for r in (0, 1)]
    finish([start(d, nodes, log) for d, log in zip(settings, logs)], logs)

    assert "--rdzv-endpoint" in torchrun_command(settings[1], []) and "--standalone" not in torchrun_command(settings[1], [])
    a, b = weights(single), weights(nodes)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs between 2 nodes x 1 process and 1 node x 2 processes"
