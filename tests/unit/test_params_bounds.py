"""Parameters that reach devices, paths, loss weights and worker pools are validated before any work starts, with
the field, the value and the rule."""

from pathlib import Path

import pytest
import yaml

from spectralgpt.config import ConfigError, check_device, load_params

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("override,message", [
    ({"pretrain.train.device": "bogus"}, "pretrain.train: Value error, device 'bogus' is not a torch device"),
    ({"finetune.segmentation.train.device": "gpu0"}, "device 'gpu0' is not a torch device"),
    ({"evaluate.device": "cuda:x"}, "evaluate.device = 'cuda:x'"),
    ({"evaluate.split": "holdout"}, "evaluate.split = 'holdout': Value error, split 'holdout' is not one of"),
    ({"evaluate.legacy": {"detection": {"x": True}}}, "unknown task(s) ['detection']"),
    ({"preprocess.sizes": {"pretrian": 96}}, "unknown corpus name(s) ['pretrian'] in preprocess.sizes"),
    ({"preprocess.recipes": {"eurosat": "zscore"}}, "in preprocess.recipes"),
    ({"preprocess.fits": {"cd": "tile"}}, "in preprocess.fits"),
    ({"preprocess.sizes": {"pretrain": 2}}, "must be >= 8"),
    ({"pretrain.stages": [{"name": "../../x", "img_size": 64, "epochs": 1}]}, "must be one plain path component"),
    ({"pretrain.stages": [{"name": "a/b", "img_size": 64, "epochs": 1}]}, "plain path component"),
    ({"pretrain.stages": [{"name": "", "img_size": 64, "epochs": 1}]}, "plain path component"),
    ({"pretrain.stages": [{"name": "s", "img_size": 64, "epochs": 1, "corpus": "../x"}]}, "unknown corpus '../x'"),
    ({"pretrain.stages": [{"name": "s", "img_size": 64, "epochs": 1}, {"name": "s", "img_size": 64, "epochs": 1}]},
     "stage names must be unique"),
    ({"finetune.change.class_weights": [1.0, -2.0]}, "finite and >= 0"),
    ({"finetune.change.class_weights": [1.0, float("nan")]}, "finite and >= 0"),
    ({"finetune.change.class_weights": [1.0, 2.0, 3.0]}, "the change task has 2 classes but class_weights has 3"),
    ({"finetune.segmentation.class_weights": [0.0, 0.0]}, "class weights are all 0"),
    ({"finetune.segmentation.class_weights": []}, "class_weights is empty"),
    ({"ingest.workers": 100000}, "ingest.workers = 100000: Value error, workers = 100000 is over the limit"),
])
def test_bad_parameters_fail_before_work(override, message):
    with pytest.raises(ConfigError) as info:
        load_params(REPO / "params.yaml", override)
    assert message in str(info.value), str(info.value)


def test_good_values_pass():
    p = load_params(REPO / "params.yaml", {"pretrain.train.device": "cuda:1", "evaluate.device": "cpu",
                                           "evaluate.split": "val", "finetune.change.class_weights": [1.0, 3.5],
                                           "preprocess.sizes": {"segmentation": 64}})
    assert p.evaluate.split == "val" and p.finetune["change"].class_weights == [1.0, 3.5]


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_device_names(name):
    assert check_device(name) == name


@pytest.mark.parametrize("name", ["bogus", "cuda:", "cuda:-1", "cpu:0:1", "", None, 3])
def test_bad_device_names(name):
    with pytest.raises(ValueError, match="not a torch device"):
        check_device(name)


def test_profiles_still_validate():
    for path in ["params.yaml", *sorted(str(p.relative_to(REPO)) for p in (REPO / "params").glob("*.yaml"))]:
        load_params(REPO / path)
        assert yaml.safe_load((REPO / path).read_text())
