"""Atomically written files get the mode a plain write gives (0o666 minus the umask), not mkstemp's 0600."""

import os
import stat

import pytest

from spectralgpt.io import atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_get_the_plain_write_mode(tmp_path, umask_022):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic.atomic_write_text(tmp_path / "a.txt", "x")
    atomic.atomic_write_bytes(tmp_path / "b.bin", b"x")
    with atomic.atomic_path(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"x")
    for name in ("a.txt", "b.bin", "c.bin"):
        assert _mode(tmp_path / name) == _mode(plain) == 0o644


def test_the_umask_is_followed(tmp_path):
    old = os.umask(0o077)
    try:
        atomic.atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private.txt") == 0o600


def test_umask_read_from_proc_matches_the_process(umask_022):
    if atomic._umask_from_proc() is None:
        pytest.skip("no Umask line in /proc/self/status here")
    assert atomic.current_umask() == 0o022


def test_fallback_without_proc(monkeypatch, umask_022):
    monkeypatch.setattr(atomic, "_PROC_STATUS", "/nonexistent/status")
    assert atomic._umask_from_proc() is None
    assert atomic.current_umask() == atomic._UMASK_AT_IMPORT
