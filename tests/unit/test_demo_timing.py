"""The demo's timings: a stage process records its name, wall and CPU seconds at exit when asked to, and the
table the demo prints lists every step and a total."""

import os
import subprocess
import sys
from pathlib import Path

from flows.timing import STAGE_TIMES_ENV, Stopwatch, busy_seconds, read_stage_times, stage_name

REPO = Path(__file__).resolve().parents[2]


def test_stage_name_follows_dvc_stage_names():
    assert stage_name(["/repo/flows/finetune.py", "--task", "multilabel"]) == "finetune@multilabel"
    assert stage_name(["/repo/flows/pretrain.py"]) == "pretrain"
    assert stage_name(["/repo/flows/evaluate.py", "--params", "p.yaml", "--task", "change"]) == "evaluate@change"


def test_a_stage_process_appends_its_times_only_when_asked(tmp_path):
    times = tmp_path / "times.jsonl"
    code = "import flows, sys; sum(i * i for i in range(1_000_000)); sys.argv = ['flows/finetune.py', '--task', 'x']"
    env = {**os.environ, STAGE_TIMES_ENV: str(times)}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
    env.pop(STAGE_TIMES_ENV)
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
    rows = read_stage_times(times)
    assert [r["stage"] for r in rows] == ["finetune@x"]  # the second process was not asked
    assert rows[0]["cpu_s"] > 0 and rows[0]["wall_s"] > 0 and rows[0]["end"] > 0, rows


def test_table_lists_steps_and_a_total():
    watch = Stopwatch()
    with watch("synthetic corpus"):
        sum(i * i for i in range(200_000))
    watch.add("  pretrain", 12.5, 24.0)
    table = watch.table().splitlines()
    assert table[0].split() == ["stage", "wall", "s", "CPU", "s"]
    assert table[2].startswith("synthetic corpus")
    assert table[3].split() == ["pretrain", "12.5", "24.0"]
    assert table[-1].split()[0] == "total" and float(table[-1].split()[1]) >= 0


def test_busy_seconds_counts_overlapping_stages_once():
    rows = [{"wall_s": 10.0, "end": 110.0}, {"wall_s": 5.0, "end": 108.0},  # 100-110 and 103-108: 10 s
            {"wall_s": 4.0, "end": 124.0}, {"wall_s": 6.0, "end": 126.0}]  # 120-124 and 120-126: 6 s
    assert busy_seconds(rows) == 16.0
    assert busy_seconds([{"wall_s": 3.0, "end": 3.0}, {"wall_s": 2.0, "end": 6.0}]) == 5.0  # one after the other
    assert busy_seconds([]) == 0.0


def test_a_lane_records_its_thread_count(tmp_path):
    times = tmp_path / "times.jsonl"
    env = {**os.environ, STAGE_TIMES_ENV: str(times), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", "import flows, sys; sys.argv = ['flows/pretrain.py']"], cwd=REPO, env=env,
                   check=True)
    assert read_stage_times(times)[0]["threads"] == "1"
