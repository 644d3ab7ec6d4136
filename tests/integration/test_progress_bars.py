"""Long loops show a samples/s bar on stderr when asked, and the bar changes nothing: same results with process
pools, nothing drawn when switched off."""

import json

from corpus_helpers import ArraySource

from spectralgpt.data.preprocess import preprocess
from spectralgpt.data.validate import scan


def test_scan_bar_with_workers(capfd):
    src = ArraySource(12, bad=(3,))
    with_bar = scan(src, None, workers=2, chunk_size=4, progress=True)
    err = capfd.readouterr().err
    plain = scan(src, None, workers=1, chunk_size=4, progress=False)
    assert "scan" in err and "sample/s" in err and not capfd.readouterr().err
    assert list(with_bar.good) == list(plain.good) and len(with_bar.good) == 11


def test_preprocess_bar_with_workers(tmp_path, capfd):
    src = ArraySource(10, hw=(16, 16))
    preprocess(src, tmp_path / "a", size=16, shard_size=3, workers=2, progress=True, fsync=False)
    err = capfd.readouterr().err
    preprocess(src, tmp_path / "b", size=16, shard_size=3, workers=1, progress=False, fsync=False)
    assert "preprocess a" in err and "sample/s" in err and not capfd.readouterr().err
    a, b = (json.loads((tmp_path / x / "manifest.json").read_text()) for x in ("a", "b"))
    assert a["content_digest"] == b["content_digest"] and a["n_items"] == 10


def test_evaluation_bar_passes_batches_through(capfd):
    from spectralgpt.evaluation.evaluate import _with_bar

    batches = [([0, 1, 2], "logits", "target"), ([3, 4], "l2", "t2")]
    assert list(_with_bar(iter(batches), 5, "test")) == batches
    assert "evaluate test" not in capfd.readouterr().err  # not a terminal: no bar in logs or CI
