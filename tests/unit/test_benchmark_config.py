"""The benchmark section and its per-protocol profiles validate; bad values fail naming the field and the rule."""

from pathlib import Path

import pytest

from spectralgpt.config import BenchmarkConfig, ConfigError, load_params

REPO = Path(__file__).resolve().parents[2]
PROFILES = sorted((REPO / "params" / "benchmark").glob("*.yaml"))  # a subfolder: params/*.yaml are whole profiles


def test_there_is_a_profile_per_protocol():
    assert {p.name for p in PROFILES} >= {"linear-probe.yaml", "knn.yaml", "upernet.yaml"}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_profiles_replace_the_benchmark_section(profile):
    p = load_params(REPO / "params.yaml", profile=profile)
    assert p.benchmark.name == profile.stem
    assert p.pretrain == load_params(REPO / "params.yaml").pretrain  # the other sections stay params.yaml's


def test_params_yaml_has_the_demo_benchmark():
    b = load_params(REPO / "params.yaml").benchmark_config()
    assert b.protocols == ["linear_probe", "knn"] and [d.task for d in b.datasets] == [None, None]


def base(**changes) -> dict:
    return {"datasets": [{"name": "eurosat", "shards": "data/shards/classification"}], **changes}


@pytest.mark.parametrize("changes,message", [
    ({"protocols": ["svm"]}, "unknown protocol"),
    ({"protocols": ["knn", "knn"]}, "listed twice"),
    ({"datasets": []}, "at least 1 item"),
    ({"datasets": [{"name": "a", "shards": "x"}, {"name": "a", "shards": "y"}]}, "dataset names must be unique"),
    ({"datasets": [{"name": "a"}]}, "exactly one of source"),
    ({"datasets": [{"name": "a", "shards": "x", "source": {"kind": "eurosat", "root": "r"}}]}, "exactly one of source"),
    ({"datasets": [{"name": "../x", "shards": "x"}]}, "one plain path component"),
    ({"datasets": [{"name": "a", "shards": "x", "test_split": "train"}]}, "are both 'train'"),
    ({"datasets": [{"name": "a", "shards": "x", "fit": "tile"}]}, "apply to a raw source"),
    ({"datasets": [{"name": "a", "source": {"kind": "eurosat", "root": "r", "split": "test"}}]}, "source.split"),
    ({"datasets": [{"name": "a", "shards": "x", "task": "segmentation"}]}, "none of the protocols"),
    ({"encoder": "SpectralGPT+.pth"}, "name its architecture in arch"),
    ({"arch": "vit_gigantic"}, "unknown model 'vit_gigantic'"),
    ({"knn": {"k": 0}}, "knn.k"),
    ({"upernet": {"class_weights": [0, 0]}}, "class weights are all 0"),
    ({"upernet": {"train": {"device": "tpu"}}}, "not a torch device"),
    ({"device": "gpu"}, "not a torch device"),
])
def test_bad_values_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_params(REPO / "params.yaml", {"benchmark": base(**changes)})


def test_one_protocol_may_be_given_as_a_string_and_tasks_declared():
    cfg = BenchmarkConfig(**base(protocols="upernet", datasets=[{"name": "s", "shards": "x", "task": "segmentation"}]))
    assert cfg.protocols == ["upernet"] and cfg.upernet.layers is None and cfg.upernet.freeze_encoder


def test_a_params_file_without_the_section_says_how_to_add_one(tmp_path):
    text = (REPO / "params.yaml").read_text()
    (tmp_path / "p.yaml").write_text(text[:text.index("\n# `spectralgpt benchmark`")] + "\n")
    with pytest.raises(ConfigError, match="no benchmark section"):
        load_params(tmp_path / "p.yaml").benchmark_config()
