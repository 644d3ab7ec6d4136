"""Training checkpoints: pruning never deletes what was just written, and a checkpoint computed from other
inputs is refused, naming what changed."""

import logging

import torch

from spectralgpt.training import state as ckpt


def _state(step, inputs=None):
    return {"model": {"w": torch.full((2,), float(step))}, "optimizer": {}, "micro_step": step, "inputs": inputs}


def test_pruning_keeps_the_checkpoint_just_written_despite_a_newer_corrupt_one(tmp_path):
    ckpt.save(tmp_path, 50, _state(50), keep=1)
    (tmp_path / "ckpt-00000100.pt").write_bytes(b"not a checkpoint")  # a crashed later run's partial file
    state, path = ckpt.load_latest(tmp_path)
    assert path.name == "ckpt-00000050.pt" and (tmp_path / "ckpt-00000100.pt.corrupt").exists()
    ckpt.save(tmp_path, 60, _state(60), keep=1)
    assert [p.name for p in ckpt.checkpoints(tmp_path)] == ["ckpt-00000060.pt"]
    state, path = ckpt.load_latest(tmp_path)
    assert path.name == "ckpt-00000060.pt" and state["micro_step"] == 60


def test_pruning_leaves_a_newer_name_alone_and_keeps_the_new_one(tmp_path):
    ckpt.save(tmp_path, 100, _state(100), keep=1)
    ckpt.save(tmp_path, 20, _state(20), keep=1)  # e.g. a run that restarted from scratch in the same folder
    assert {p.name for p in ckpt.checkpoints(tmp_path)} == {"ckpt-00000100.pt", "ckpt-00000020.pt"}


def test_checkpoint_of_other_inputs_is_refused_and_removed(tmp_path, caplog):
    old = {"corpus": "a" * 64, "start": "none"}
    ckpt.save(tmp_path, 4, _state(4, old), keep=2)
    assert ckpt.load_latest(tmp_path, old)[1].name == "ckpt-00000004.pt"
    new = {"corpus": "b" * 64, "start": "none"}
    with caplog.at_level(logging.WARNING):
        assert ckpt.load_latest(tmp_path, new) is None
    assert "refusing to resume" in caplog.text and "corpus: aaaaaaaaaaaa -> bbbbbbbbbbbb" in caplog.text
    assert ckpt.checkpoints(tmp_path) == []
