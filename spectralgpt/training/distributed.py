"""torchrun / DDP helpers: the same entry point runs in one process or many (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def torchrun_command(d, entry: list[str], python: str | None = None) -> list[str]:
    """The torchrun command line that starts this node's workers of `entry` (e.g. ["-m", "spectralgpt.cli",
    "pretrain", ...]) for the launch settings `d` (a `spectralgpt.config.DistributedConfig`).

    One node without an endpoint: `--standalone` (a rendezvous on a free local port). Several nodes: `c10d` meets
    at `rdzv_endpoint` under `rdzv_id` (torchrun assigns global ranks, so `--node-rank` is not passed: it would be
    ignored); `static` passes `--node-rank` and the endpoint as `--master-addr/--master-port`."""
    import sys

    cmd = [python or sys.executable, "-m", "torch.distributed.run", "--nnodes", str(d.nnodes),
           "--nproc-per-node", str(d.nproc_per_node)]
    if d.max_restarts:
        cmd += ["--max-restarts", str(d.max_restarts)]
    if d.rdzv_endpoint is None:
        cmd += ["--standalone"]
    elif d.rdzv_backend == "static":
        host, port = d.rdzv_endpoint.rsplit(":", 1)
        cmd += ["--rdzv-backend", "static", "--node-rank", str(d.node_rank), "--master-addr", host.strip("[]"),
                "--master-port", port]
    else:
        cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", d.rdzv_endpoint, "--rdzv-id", d.rdzv_id,
                "--rdzv-conf", f"join_timeout={d.join_timeout}"]
    return cmd + list(entry)


def init_from_env() -> tuple[int, int]:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1). Returns (rank, world_size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return rank_world()


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_world()[0] == 0


def all_gather(obj) -> list:
    """`obj` from every rank, in rank order (a one-element list in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
