"""`spectralgpt predict` / `embed` against hostile or mistaken invocations: every refusal is one line on stderr
and exit code 2 (never a traceback), made before the model is loaded or anything is computed, and nothing is
read, fetched or overwritten."""
# ruff: noqa: F811  (pytest fixtures imported from tracking_helpers are redefined as arguments)

import hashlib
import os

import pytest
import torch
from hostile_helpers import loopback_server, write_sparse_huge, write_vrt_disguise
from inference_helpers import save_tiny, scene_array, write_band_folder, write_scene
from tracking_helpers import empty_store_db, store  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from spectralgpt.cli import app

T = 64


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("m") / "seg", "seg_vit_tiny_patch8_64", "segmentation",
                     [f"c{i}" for i in range(4)])


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _refused(res, match):
    assert res.exit_code == 2, res.output
    assert match in res.output, res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_output_that_is_the_input_is_refused_and_left_intact(tmp_path, model_dir):
    src = write_scene(tmp_path / "x.tif", scene_array(T, T))
    before = _digest(src)
    _refused(_run("predict", "-m", model_dir, "-i", src, "-o", src, "--no-progress"), "is the input")
    _refused(_run("predict", "-m", model_dir, "-i", src, "-o", tmp_path / "." / "x.tif", "--overwrite"), "is the input")
    (tmp_path / "link.tif").symlink_to(src)
    _refused(_run("predict", "-m", model_dir, "-i", src, "-o", tmp_path / "link.tif", "--overwrite"), "is the input")
    _refused(_run("predict", "-m", model_dir, "-i", src, "--input2", tmp_path / "y.tif", "-o", src), "is the input")
    folder = write_band_folder(tmp_path / "bands", scene_array(T, T))
    band = next(folder.glob("*_B02.tif"))
    _refused(_run("predict", "-m", model_dir, "-i", folder, "-o", band, "--overwrite"), "is the input")
    assert _digest(src) == before


def test_existing_output_needs_overwrite(tmp_path, model_dir):
    src = write_scene(tmp_path / "s.tif", scene_array(T, T))
    out = tmp_path / "out.tif"
    out.write_bytes(b"previous result")
    _refused(_run("predict", "-m", model_dir, "-i", src, "-o", out, "--no-progress"), "already exists; pass --overwrite")
    assert out.read_bytes() == b"previous result"
    res = _run("predict", "-m", model_dir, "-i", src, "-o", out, "--no-progress", "--overwrite")
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] in (b"II*\x00", b"II+\x00")


def test_output_folder_or_unwritable_parent_is_refused_before_loading(tmp_path, model_dir, monkeypatch):
    import spectralgpt.inference.predictor as predictor

    monkeypatch.setattr(predictor.Predictor, "load", classmethod(lambda *a, **k: pytest.fail("model loaded")))
    src = write_scene(tmp_path / "s.tif", scene_array(T, T))
    (tmp_path / "folder").mkdir()
    _refused(_run("predict", "-m", model_dir, "-i", src, "-o", tmp_path / "folder"), "is a folder")
    (tmp_path / "file").write_text("x")
    _refused(_run("predict", "-m", model_dir, "-i", src, "-o", tmp_path / "file" / "out.tif"), "is not a folder")
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        _refused(_run("predict", "-m", model_dir, "-i", src, "-o", ro / "out.tif"), "not writable")


def test_bad_device_model_and_checkpoint_are_one_line_errors(tmp_path, model_dir):
    src = write_scene(tmp_path / "s.tif", scene_array(T, T))
    out = tmp_path / "o.tif"
    _refused(_run("predict", "-m", model_dir, "-i", src, "-o", out, "--device", "bogus"), "not a torch device")
    if not torch.cuda.is_available():
        _refused(_run("predict", "-m", model_dir, "-i", src, "-o", out, "--device", "cuda:0"), "no CUDA GPU")
    _refused(_run("predict", "-m", tmp_path / "nope", "-i", src, "-o", out), "not found")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((model_dir / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 16)
    _refused(_run("predict", "-m", broken, "-i", src, "-o", out), "cannot read checkpoint")
    _refused(_run("predict", "-m", model_dir, "-i", src, "-o", out, "--precision", "fp8"), "precision must be")
    _refused(_run("embed", "-m", model_dir, "-i", src, "-o", tmp_path / "e.parquet", "--device", "gpu"), "not a torch device")
    assert not out.exists()


def test_wrong_registry_alias_is_a_one_line_error(tmp_path, store):
    src = write_scene(tmp_path / "s.tif", scene_array(T, T))
    _refused(_run("predict", "-m", "models:/spectralgpt-segmentation@nobody", "-i", src, "-o", tmp_path / "o.tif"),
             "error: ")


def test_hostile_inputs_are_refused_without_fetching_or_parsing(tmp_path, model_dir):
    out = tmp_path / "o.tif"
    with loopback_server() as (base, hits):
        for url in (f"{base}/scene.tif", f"/vsicurl/{base}/scene.tif"):
            _refused(_run("predict", "-m", model_dir, "-i", url, "-o", out), "error: ")
        assert hits == []
    folder = write_band_folder(tmp_path / "safe", scene_array(T, T))
    secret = write_scene(tmp_path / "private.tif", scene_array(T, T, seed=9))
    b02 = next(folder.glob("*_B02.tif"))
    b02.unlink()
    write_vrt_disguise(folder / "T31UDQ_20200101T000000_B02.jp2", secret)
    _refused(_run("predict", "-m", model_dir, "-i", folder, "-o", out), "not a GeoTIFF")
    huge = write_sparse_huge(tmp_path / "huge.tif")
    _refused(_run("predict", "-m", model_dir, "-i", huge, "-o", out), "GiB limit")
    assert not out.exists()
