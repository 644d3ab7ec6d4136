"""params.yaml and the profiles validate; bad values fail before any work, naming field, value and rule."""

from pathlib import Path

import pytest
import torch

from spectralgpt.config import ConfigError, load_params
from spectralgpt.models import create_model, load_pretrained

REPO = Path(__file__).resolve().parents[2]
PROFILES = ["params.yaml", "params/paper.yaml", "params/base.yaml", "params/large.yaml", "params/huge.yaml"]


@pytest.mark.parametrize("path", PROFILES)
def test_profiles_are_valid_and_their_models_fit_together(path):
    p = load_params(REPO / path)
    with torch.device("meta"):
        mae = create_model(p.pretrain.model, **p.pretrain.model_overrides)
        models = {ft.task: create_model(ft.model, **ft.model_overrides) for ft in p.finetune.values()}
    for ft in p.finetune.values():
        model = models[ft.task]
        assert model.cfg.embed_dim == mae.cfg.embed_dim and model.cfg.depth == mae.cfg.depth, ft.task
    assert set(p.finetune) == {"classification", "multilabel", "segmentation", "change"}


def test_tiny_profile_pretrained_encoder_loads_into_every_task_model():
    p = load_params(REPO / "params.yaml")
    mae = create_model(p.pretrain.model, **p.pretrain.model_overrides).state_dict()
    for ft in p.finetune.values():
        assert not [k for k in load_pretrained(create_model(ft.model, **ft.model_overrides), mae).missing
                    if k.startswith("blocks.")]


@pytest.mark.parametrize("override,message", [
    ({"pretrain.mask_ratio": 1.2}, "pretrain.mask_ratio = 1.2: Input should be less than 1"),
    ({"pretrain.train.batch_size": 0}, "pretrain.train.batch_size = 0"),
    ({"finetune.segmentation.task": "detection"}, "finetune.segmentation.task = 'detection'"),
    ({"data.sources.weird": {"kind": "eurosat", "root": "x"}}, "unknown corpus name"),
    ({"preprocess.bogus": 1}, "preprocess.bogus = 1: Extra inputs are not permitted"),
    ({"data.sources.classification.kind": "landsat"}, "data.sources.classification.kind = 'landsat'"),
    ({"pretrain.stages": [{"name": "s1", "img_size": 100, "epochs": 1}]}, "img_size 100 is not a multiple of patch_size 8"),
    ({"finetune.change.model_overrides": {"num_bands": 13}}, "num_bands 13 is not a multiple of t_patch_size 3"),
    ({"finetune.segmentation.model": "vit_tiny_patch8_64"}, "the segmentation task needs a segmentation model"),
    ({"pretrain.model": "vit_gigantic"}, "unknown model 'vit_gigantic'"),
])
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_params(REPO / "params.yaml", override)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("pretrain: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
