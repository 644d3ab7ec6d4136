"""TorchGeo-style datasets over our readers: sample dicts ("image" float tensor, "label" or "mask"), transforms,
plot, and a DataLoader; a real torchgeo NonGeoDataset where torchgeo imports."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
pytest.importorskip("h5py")

from benchmark_fixtures import make_geobench, make_ucmerced  # noqa: E402

from spectralgpt.bands import PRETRAIN_BANDS  # noqa: E402
from spectralgpt.data import load_dataset  # noqa: E402
from spectralgpt.integrations import torchgeo as tg  # noqa: E402


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    return {"eurosat": make_geobench(d, "m-eurosat")[0],
            "bigearthnet": make_geobench(d, "m-bigearthnet", task="multilabel", n_classes=43,
                                         skip_bands=("10 - SWIR - Cirrus",))[0],
            "cashew": make_geobench(d, "m-cashew-plant", task="segmentation", n_classes=7, dated=True,
                                    skip_bands=("10 - SWIR - Cirrus",))[0],
            "ucmerced": make_ucmerced(d / "uc", split_lists=True)[0]}


def test_sample_dicts_for_each_task(roots):
    ds = tg.GeoBenchDataset(roots["eurosat"], split="train")
    s = ds[1]
    assert set(s) == {"image", "label"} and s["image"].dtype == torch.float32 and s["image"].shape == (12, 16, 16)
    assert s["label"].dtype == torch.long and s["label"].ndim == 0 and int(s["label"]) == 1
    assert ds.bands == PRETRAIN_BANDS and ds.classes[1] == "Forest" and len(ds) == 3
    ml = tg.GeoBenchDataset(roots["bigearthnet"], split="test")[0]
    assert set(ml) == {"image", "label"} and ml["label"].dtype == torch.float32 and ml["label"].shape == (43,)
    seg = tg.GeoBenchDataset(roots["cashew"], split="val")[0]
    assert set(seg) == {"image", "mask"} and seg["mask"].dtype == torch.long and seg["mask"].shape == (16, 16)
    uc = tg.UCMercedDataset(roots["ucmerced"], split="val")
    assert uc[0]["image"].shape == (3, 16, 16) and int(uc[0]["label"]) == uc.classes.index("river")
    assert tg.TORCHGEO == ("NonGeoDataset" in [c.__name__ for c in type(ds).__mro__])


def test_transforms_reader_instances_and_a_dataloader(roots):
    def scale(sample):
        sample["image"] = sample["image"] / 10000.0
        return sample

    src = load_dataset("geobench", roots["cashew"], split="train")
    ds = tg.ReaderDataset(src, transforms=scale)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 12, 16, 16) and batch["mask"].shape == (2, 16, 16)
    assert float(batch["image"].max()) < 0.2
    raw = tg.ReaderDataset("geobench", roots["cashew"], split="train")[0]["image"]
    assert torch.allclose(ds[0]["image"], raw / 10000.0)
    with pytest.raises(TypeError, match="transforms must be callable"):
        tg.ReaderDataset(src, transforms="not callable")
    with pytest.raises(TypeError, match="root is required"):
        tg.ReaderDataset("geobench")


def test_plot_returns_a_figure(roots):
    import matplotlib

    matplotlib.use("Agg")
    ds = tg.GeoBenchDataset(roots["cashew"], split="train")
    s = ds[0]
    s["prediction"] = s["mask"].clone()
    fig = ds.plot(s, suptitle="cashew")
    assert len(fig.axes) == 3 and ds.rgb_indices() == [3, 2, 1]  # B4, B3, B2
    uc = tg.UCMercedDataset(roots["ucmerced"], split="train")
    fig = uc.plot(uc[0])
    assert fig.axes[0].get_title() == "label: agricultural" and uc.rgb_indices() == [0, 1, 2]
    assert np.isfinite(np.asarray(fig.axes[0].images[0].get_array())).all()
