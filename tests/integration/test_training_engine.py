"""The training engine: exact resume after SIGKILL, corrupt-checkpoint fallback, accumulation, DDP on CPU."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spectralgpt.training.optim import lr_at, param_groups
from spectralgpt.training.sampler import ResumableBatches

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "scripts" / "train_tiny.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
       "OMP_NUM_THREADS": "1"}


def run(out, *args, **kw):
    try:
        return subprocess.run([sys.executable, str(SCRIPT), str(out), *map(str, args)], env=ENV, check=True,
                              capture_output=True, text=True, timeout=300, **kw)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"train_tiny.py {' '.join(map(str, args))} failed:\n{e.stderr[-3000:]}")


def weights(out):
    return torch.load(Path(out) / "final.pt", weights_only=True)


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    run(out, "mae", 10, 8)
    return out


def test_sigkill_then_rerun_gives_bit_identical_weights(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(out), "mae", "10", "8", "--slow", "0.3"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "ckpt-00000004.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "final.pt").exists()
    done = sorted(p.name for p in (out / "checkpoints").glob("ckpt-*.pt"))
    assert "ckpt-00000010.pt" not in done
    run(out, "mae", 10, 8)  # the same command again
    assert_identical(weights(out), weights(uninterrupted))


def test_corrupt_newest_checkpoint_falls_back_to_previous(uninterrupted, tmp_path):
    out = tmp_path / "corrupt"
    run(out, "mae", 6, 8)
    ckpts = out / "checkpoints"
    newest = ckpts / "ckpt-00000006.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a partial write from a crashed disk
    result = run(out, "mae", 10, 8)
    assert "unreadable" in result.stderr and "falling back" in result.stderr
    assert (ckpts / "ckpt-00000006.pt.corrupt").exists()  # kept for inspection, out of the way
    assert_identical(weights(out), weights(uninterrupted))


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    run(tmp_path / "full", "classifier", 2, 8)
    run(tmp_path / "accum", "classifier", 2, 4, "--accum", 2)
    a, b = weights(tmp_path / "full"), weights(tmp_path / "accum")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_two_process_ddp_matches_single_process(tmp_path):
    run(tmp_path / "single", "classifier", 3, 8)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(29500 + os.getpid() % 1000), str(SCRIPT), str(tmp_path / "ddp"), "classifier", "3", "4"]
    subprocess.run(cmd, env=ENV, check=True, capture_output=True, text=True, timeout=300)
    a, b = weights(tmp_path / "single"), weights(tmp_path / "ddp")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_schedule_warmup_then_half_cosine():
    assert lr_at(0.0, 1.0, 0.0, 2, 10) == 0.0
    assert lr_at(1.0, 1.0, 0.0, 2, 10) == pytest.approx(0.5)
    assert lr_at(2.0, 1.0, 0.0, 2, 10) == pytest.approx(1.0)
    assert lr_at(6.0, 1.0, 0.1, 2, 10) == pytest.approx(0.55)
    assert lr_at(10.0, 1.0, 0.1, 2, 10) == pytest.approx(0.1)


def test_weight_decay_and_layer_decay_groups():
    from spectralgpt.models import create_model

    model = create_model("vit_tiny_patch8_64")
    groups = param_groups(model, 0.05, layer_decay=0.75, no_decay=("pos_embed",))
    by_name = {n: g for g in groups for n in g["names"]}
    assert by_name["blocks.0.attn.q.weight"]["weight_decay"] == 0.05
    assert by_name["blocks.0.attn.q.bias"]["weight_decay"] == 0.0
    assert by_name["pos_embed_spatial"]["weight_decay"] == 0.0
    assert by_name["norm.weight"]["weight_decay"] == 0.0
    depth = len(model.blocks)
    assert by_name["head.weight"]["lr_scale"] == 1.0
    assert by_name["patch_embed.proj.weight"]["lr_scale"] == pytest.approx(0.75 ** (depth + 1))
    assert by_name["blocks.2.mlp.fc1.weight"]["lr_scale"] == pytest.approx(0.75 ** (depth - 2))


def test_batches_are_a_pure_function_of_seed_and_epoch():
    a = ResumableBatches(10, 3, seed=1)
    full = list(a)
    a.set_position(0, 2)
    assert list(a) == full[2:]
    ranks = [list(ResumableBatches(10, 2, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    seen = sorted(i for r in ranks for _, _, b in r for i in b)
    assert seen == sorted(ResumableBatches(10, 2, seed=1).indices(0)[:8])
    with pytest.raises(ValueError, match="no full batch"):
        ResumableBatches(3, 4)
