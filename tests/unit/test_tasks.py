"""The one list of tasks (`spectralgpt.tasks`) is the list config, flows, the CLI and dvc.yaml use; each task's
settings there agree with its object; nothing in the library branches on a task name."""

import re
from pathlib import Path

import pytest
import torch
import yaml

from spectralgpt import config
from spectralgpt.evaluation.metrics import PRIMARY_METRICS
from spectralgpt.tasks import FINETUNE_TASKS, TASKS, get_task
from spectralgpt.tasks.multilabel import best_threshold, choose_thresholds

REPO = Path(__file__).resolve().parents[2]


def test_config_flows_and_cli_take_the_task_list_from_spectralgpt_tasks():
    assert config.TASKS == FINETUNE_TASKS == ("classification", "multilabel", "segmentation", "change")
    assert set(config.Task.__args__) == set(FINETUNE_TASKS)
    assert config.MODEL_KIND == {t: get_task(t).model_kind for t in FINETUNE_TASKS}
    assert set(TASKS) == {"pretrain", *FINETUNE_TASKS}
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        get_task("nope")
    assert "choices=TASKS" in (REPO / "flows/common.py").read_text()


def test_dvc_yaml_foreach_lists_are_the_task_list_and_agree_with_each_task():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert tuple(stages["finetune"]["foreach"]) == FINETUNE_TASKS
    assert tuple(stages["evaluate"]["foreach"]) == FINETUNE_TASKS
    params = config.load_params(REPO / "params.yaml")
    deps = stages["finetune"]["do"]["deps"]
    for name, item in stages["finetune"]["foreach"].items():
        task = get_task(name)
        assert item["metric"] == task.primary_metric == PRIMARY_METRICS[name]
        # the stage depends on exactly the splits it reads: train, and the one it validates on
        assert item["val"] == params.finetune[name].val_split, name
    assert "data/shards/${key}/train" in deps and "data/shards/${key}/${item.val}" in deps
    assert not any("/test" in d or "evaluate.split" in d for d in deps)


def test_the_library_does_not_branch_on_task_names():
    pattern = re.compile(r"\btask(\.name)? (==|!=|in \()|cfg\.kind (==|!=)")
    allowed = {"spectralgpt/evaluation/report.py",  # its public save_report(task=...) keeps a default name rule
               "spectralgpt/data/sources/geobench.py"}  # GEO-Bench's own task types name its folders' label layout
    found = [f"{p.relative_to(REPO)}:{i}: {line.strip()}"
             for p in sorted((REPO / "spectralgpt").rglob("*.py")) if str(p.relative_to(REPO)) not in allowed
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)


def test_threshold_choice_maximises_f1_with_a_margin():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.3, 0.2])
    assert best_threshold(scores, torch.tensor([1, 0, 1, 0, 0])) == pytest.approx(0.5)  # keep the top three
    assert best_threshold(scores, torch.zeros(5)) == 0.5  # no positives: the default
    probs = torch.tensor([[0.9, 0.2], [0.1, 0.3], [0.8, 0.25]])
    targets = torch.tensor([[1, 0], [0, 1], [1, 0]])
    per_class = choose_thresholds(probs, targets, "per_class")
    assert per_class[0] == pytest.approx(0.45) and per_class[1] == pytest.approx(0.275)
    assert len(set(choose_thresholds(probs, targets, "global"))) == 1
    assert choose_thresholds(probs, targets, 0.3) == [0.3, 0.3]
    decided = get_task("multilabel").decide(probs, {"thresholds": per_class})
    assert torch.equal(decided, targets.bool())


def test_invalid_task_settings_fail_before_any_work():
    with pytest.raises(config.ConfigError, match="thresholds apply to multi-label"):
        config.load_params(REPO / "params.yaml", {"finetune.classification.thresholds": "global"})
    with pytest.raises(config.ConfigError, match="every_steps or every_epochs, not both"):
        config.load_params(REPO / "params.yaml", {"finetune.change.validate": {"every_steps": 2, "every_epochs": 1}})
    with pytest.raises(config.ConfigError, match="class_weights apply to segmentation, change"):
        config.load_params(REPO / "params.yaml", {"finetune.multilabel.class_weights": [1.0]})
