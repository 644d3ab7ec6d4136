"""The synthetic corpus: byte-identical per seed, the public layouts exactly, plausible and learnable."""

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

from spectralgpt.bands import BANDS, PRETRAIN_BANDS
from spectralgpt.data.synthetic import (CORINE_43, EUROSAT_CLASSES, EUROSAT_FILE_BANDS, SEGMUNICH_CODES, generate,
                                        generate_demo_corpus)


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generate_demo_corpus(root, seed=0, scale="tiny")
    return root


def test_same_seed_byte_identical_any_worker_count(tmp_path, demo):
    for kind, n, size in (("eurosat", 20, 64), ("bigearthnet", 4, 120), ("oscd", 2, 60),
                          ("sen1floods11", 3, 64), ("segmunich", 4, 64)):
        generate(kind, tmp_path / "a" / kind, n=n, size=size, seed=7)
        generate(kind, tmp_path / "b" / kind, n=n, size=size, seed=7, workers=2)
        generate(kind, tmp_path / "c" / kind, n=n, size=size, seed=8)
        assert _digest(tmp_path / "a" / kind) == _digest(tmp_path / "b" / kind), kind
        assert _digest(tmp_path / "a" / kind) != _digest(tmp_path / "c" / kind), kind
    generate("pretrain", tmp_path / "t1", n=10, size=32, tar_size=4)
    generate("pretrain", tmp_path / "t2", n=10, size=32, tar_size=4, workers=2)
    assert _digest(tmp_path / "t1") == _digest(tmp_path / "t2")
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_progress_bar_with_workers_same_bytes(tmp_path, capfd):
    generate("eurosat", tmp_path / "a", n=12, size=16, seed=3, workers=2, progress=True)
    err = capfd.readouterr().err
    generate("eurosat", tmp_path / "b", n=12, size=16, seed=3, workers=1, progress=False)
    assert "synthetic eurosat" in err and "sample/s" in err
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert not capfd.readouterr().err  # progress=False draws nothing


def test_eurosat_layout(demo):
    root = demo / "eurosat"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(EUROSAT_CLASSES)
    listed = [line for s in ("train", "val", "test") for line in (root / f"eurosat-{s}.txt").read_text().split()]
    files = sorted(p.name for p in root.glob("*/*.tif"))
    assert sorted(listed) == files and len(files) == 100 and "AnnualCrop_1.tif" in files
    with rasterio.open(root / "Forest" / "Forest_1.tif") as d:
        assert (d.count, d.dtypes[0], d.shape) == (13, "uint16", (64, 64))
        assert d.crs.is_projected and d.crs.to_epsg() in range(32601, 32661) and d.transform.a == 10
        x = d.read().astype(float)
    b = {name: x[i].mean() for i, name in enumerate(EUROSAT_FILE_BANDS)}
    assert b["B8A"] > 2 * b["B4"] and b["B8"] > 2 * b["B4"]  # vegetation: B8A (stored last) is a NIR band
    assert b["B10"] < 200  # cirrus band is dark
    with rasterio.open(root / "SeaLake" / "SeaLake_1.tif") as d:
        w = np.median(d.read().astype(float), axis=(1, 2))
    assert w[EUROSAT_FILE_BANDS.index("B12")] < 300  # water (most of the scene): dark SWIR


def test_bigearthnet_layout(demo):
    root = demo / "bigearthnet"
    patches = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(patches) == 40
    names = [line for s in ("train", "val", "test") for line in (root / f"{s}.csv").read_text().split()]
    assert sorted(names) == sorted(p.name for p in patches)
    p = patches[0]
    assert p.name.startswith("S2") and "_MSIL2A_" in p.name
    tifs = sorted(f.name[len(p.name) + 1:] for f in p.glob("*.tif"))
    assert tifs == sorted(["B01.tif", "B02.tif", "B03.tif", "B04.tif", "B05.tif", "B06.tif", "B07.tif", "B08.tif",
                           "B8A.tif", "B09.tif", "B11.tif", "B12.tif"])
    for suffix, side, res in (("B02", 120, 10), ("B05", 60, 20), ("B8A", 60, 20), ("B01", 20, 60), ("B09", 20, 60)):
        with rasterio.open(p / f"{p.name}_{suffix}.tif") as d:
            assert d.shape == (side, side) and d.dtypes[0] == "uint16" and d.transform.a == res
            assert d.transform.e == -res
            origin = (d.transform.c, d.transform.f)
    meta = json.loads((p / f"{p.name}_labels_metadata.json").read_text())
    assert meta["labels"] and set(meta["labels"]) <= set(CORINE_43)
    assert (meta["coordinates"]["ulx"], meta["coordinates"]["uly"]) == origin
    # labels follow content: water labels <-> dark NIR, forest labels <-> bright NIR over a dark red
    for p in patches:
        labels = json.loads((p / f"{p.name}_labels_metadata.json").read_text())["labels"]
        with rasterio.open(p / f"{p.name}_B08.tif") as d:
            nir = d.read(1)
        with rasterio.open(p / f"{p.name}_B04.tif") as d:
            red = d.read(1)
        if labels == ["Sea and ocean"] or labels == ["Water bodies"]:
            assert np.median(nir) < 600
        if labels == ["Coniferous forest"] or labels == ["Broad-leaved forest"]:
            assert np.median(nir) > 1500 and np.median(nir) > 4 * np.median(red)


def test_segmunich_layout(demo):
    root = demo / "segmunich"
    for split in ("train", "test"):
        names = (root / "dataset" / f"{split}.txt").read_text().split()
        assert names
        for n in names[:3]:
            with rasterio.open(root / split / "img" / f"{n}.tif") as d:
                assert (d.count, d.shape, d.descriptions) == (10, (128, 128), ("B2", "B3", "B4", "B5", "B6", "B7", "B8",
                                                                               "B8A", "B11", "B12"))
            with rasterio.open(root / split / "label" / f"{n}.tif") as d:
                lab = d.read(1)
                assert d.dtypes[0] == "uint8" and lab.shape == (128, 128)
                assert set(np.unique(lab)) <= set(SEGMUNICH_CODES)


def test_oscd_layout_and_change_convention(demo):
    root = demo / "oscd"
    train = (root / "train.txt").read_text().strip().split(",")
    test = (root / "test.txt").read_text().strip().split(",")
    assert len((root / "train.txt").read_text().strip().splitlines()) == 1 and train and test
    for city in train + test:
        p1 = sorted((root / city / "imgs_1").glob("*.tif"))
        p2 = sorted((root / city / "imgs_2").glob("*.tif"))
        assert len(p1) == len(p2) == 13
        assert p1[0].name.rsplit("_", 1)[0] != p2[0].name.rsplit("_", 1)[0]  # different prefixes per date
        assert {f.name.rsplit("_", 1)[1] for f in p1} == {f"B{s}.tif" for s in
                                                          ("01", "02", "03", "04", "05", "06", "07", "08", "09",
                                                           "10", "11", "12", "8A")}
        shapes = {}
        for f in p1:
            with rasterio.open(f) as d:
                shapes[f.name.rsplit("_", 1)[1][:-4]] = (d.shape, d.transform.a)
        assert shapes["B04"] == ((120, 120), 10) and shapes["B11"] == ((60, 60), 20) and shapes["B01"] == ((20, 20), 60)
        with rasterio.open(root / city / "cm" / f"{city}-cm.tif") as d:
            cm = d.read(1)
            assert d.dtypes[0] == "uint8" and cm.shape == (120, 120)
        assert set(np.unique(cm)) == {1, 2}
        assert 0.005 < (cm == 2).mean() < 0.08  # change is rare
        # the change is real: date 2 differs much more inside the change mask than outside
        b4 = [rasterio.open(sorted((root / city / f"imgs_{k}").glob("*_B04.tif"))[0]).read(1).astype(float)
              for k in (1, 2)]
        diff = np.abs(b4[1] - b4[0])
        assert diff[cm == 2].mean() > 3 * diff[cm == 1].mean()


def test_sen1floods11_layout(demo):
    root = demo / "sen1floods11"
    imgs = sorted((root / "S2Hand").glob("*_S2Hand.tif"))
    assert len(imgs) == 6
    for f in imgs:
        lab_path = root / "LabelHand" / f.name.replace("S2Hand", "LabelHand")
        with rasterio.open(f) as d:
            assert d.count == 13 and d.dtypes[0] == "int16" and d.nodata == 0
            assert d.descriptions[8] == "B8A" and d.descriptions[-1] == "B12"
            img = d.read()
        with rasterio.open(lab_path) as d:
            lab = d.read(1)
            assert d.dtypes[0] == "int16"
        assert set(np.unique(lab)) <= {-1, 0, 1} and (lab == 1).any() and (lab == 0).any()
        assert (img[:, lab == -1] >= 0).all()
        nir = img[7].astype(float)
        assert nir[lab == 1].mean() < 0.5 * nir[lab == 0].mean()  # water is dark in NIR


def test_pretrain_pool_and_tars(tmp_path, demo):
    files = sorted((demo / "pretrain").glob("*.tif"))
    assert len(files) == 120
    with rasterio.open(files[0]) as d:
        assert (d.count, d.dtypes[0], d.shape, d.descriptions) == (12, "uint16", (128, 128), PRETRAIN_BANDS)
        sixty = d.read(1).astype(float)  # B1 (60 m): blocky, smoother than B2 (10 m)
        ten = d.read(2).astype(float)
    assert np.abs(np.diff(sixty, axis=1)).mean() < np.abs(np.diff(ten, axis=1)).mean()
    generate("pretrain", tmp_path, n=7, size=32, tar_size=3)
    tars = sorted(tmp_path.glob("*.tar"))
    assert [t.name for t in tars] == ["pretrain-00000.tar", "pretrain-00001.tar", "pretrain-00002.tar"]
    with tarfile.open(tars[2]) as tf:
        assert tf.getnames() == ["6.tif"]
    with rasterio.open(f"/vsitar/{tars[1]}/4.tif") as d:  # readable in place by GDAL
        assert d.count == 12 and d.shape == (32, 32)


def _features(x):
    x = x.astype(np.float64) / 10000
    m = x.mean((1, 2))
    s = x.std((1, 2))
    gx = np.abs(np.diff(x, axis=2)).mean((1, 2))
    return np.concatenate([m, s, gx])


def test_eurosat_classes_are_learnable(tmp_path):
    root = tmp_path / "e"
    generate("eurosat", root, n=400, seed=11)
    feats, labels = [], []
    for k, cls in enumerate(EUROSAT_CLASSES):
        for f in sorted((root / cls).glob("*.tif")):
            with rasterio.open(f) as d:
                feats.append(_features(d.read()))
            labels.append(k)
    X, y = np.array(feats), np.array(labels)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    tr, te = idx[:300], idx[300:]
    mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-9
    Xn = (X - mu) / sd
    # a small linear model (softmax regression, full-batch gradient descent)
    W = np.zeros((Xn.shape[1], 10))
    Y = np.eye(10)[y]
    for _ in range(500):
        z = Xn[tr] @ W
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        W -= 0.5 * Xn[tr].T @ (p - Y[tr]) / len(tr)
    acc = ((Xn[te] @ W).argmax(1) == y[te]).mean()
    assert acc > 0.8, acc


def test_resolutions_registry_consistent():
    assert {b: BANDS[b].resolution_m for b in ("B1", "B5", "B2")} == {"B1": 60, "B5": 20, "B2": 10}
    with pytest.raises(ValueError, match="unknown synthetic kind"):
        generate("nope", "/tmp/x")
