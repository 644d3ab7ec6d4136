"""`flows.lanes` on a real git + DVC repository in a temporary folder, with small stages that record when they ran
and with how many threads: independent stages run side by side, each after the stages it reads from, never with
more threads in all than cores; DVC's dvc.lock ends complete (a second `dvc repro` is a no-op); a change reruns
only the stages downstream of it; a failing stage stops new starts, is named, and the stages done are kept."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prefect import flow

from flows.lanes import affected, critical_path, pipeline, run_lanes

STAGE = '''import json, os, sys, time
name, out, deps = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.time()
if os.environ.get("FAIL_STAGE") == name:
    sys.exit(f"{name}: failing as asked")
meet = os.environ.get("STAGE_MEET", "").split(",")  # these stages wait (up to 30 s) until all of them have started
if name in meet:
    here = os.environ["STAGE_MEET_DIR"]
    open(os.path.join(here, name), "w").close()
    while time.time() - t0 < 30 and not all(os.path.exists(os.path.join(here, m)) for m in meet):
        time.sleep(0.05)
time.sleep(0.5)
text = name + ":" + "|".join(open(d).read() for d in deps)
open(out, "w").write(text)
with open(os.environ["STAGE_LOG"], "a") as f:
    f.write(json.dumps({"stage": name, "start": t0, "end": time.time(), "threads": os.environ.get("OMP_NUM_THREADS")}) + "\\n")
'''

# a -> b1, b2, b3; c reads b1 and b2; d is on its own; b3 declares itself the long one (`meta: {seconds: 30}`)
DAG = {"a": ["input.txt"], "b1": ["out/a"], "b2": ["out/a"], "b3": ["out/a"], "c": ["out/b1", "out/b2"],
       "d": ["other.txt"]}
SECONDS = {"b3": 30}


def sh(*cmd, cwd, check=True, env=None):
    return subprocess.run(cmd, cwd=cwd, check=check, text=True, capture_output=True, env=env)


def dvc(*args, cwd, check=True):
    return sh(sys.executable, "-m", "dvc", *args, cwd=cwd, check=check)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "out").mkdir(parents=True)
    (root / "stage.py").write_text(STAGE)
    (root / "input.txt").write_text("one")
    (root / "other.txt").write_text("two")
    stages = {name: {"cmd": f"{sys.executable} stage.py {name} out/{name} {' '.join(deps)}",
                     "deps": ["stage.py", *deps], "outs": [f"out/{name}"]} for name, deps in DAG.items()}
    for name, seconds in SECONDS.items():
        stages[name]["meta"] = {"seconds": seconds}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    sh("git", "init", "-q", cwd=root)
    dvc("init", "-q", cwd=root)
    log = tmp_path / "stages.jsonl"
    monkeypatch.setenv("STAGE_LOG", str(log))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.chdir(root)
    return root, log


def runs(log: Path) -> list[dict]:
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    return rows


@flow
def lanes_flow(jobs: int, cpus: int) -> list[str]:
    stale = sorted(json.loads(dvc("status", "--json", cwd=".").stdout or "{}"))
    return run_lanes(affected(pipeline(), stale), jobs, cpus)


def test_pipeline_and_affected_follow_the_dag(repo):
    root, _ = repo
    stages = {s.name: s for s in pipeline(root)}
    assert set(stages) == set(DAG)
    assert set(stages["c"].upstream) == {"b1", "b2"} and stages["a"].upstream == () == stages["d"].upstream
    order = [s.name for s in pipeline(root)]
    assert all(order.index(u) < order.index(n) for n, s in stages.items() for u in s.upstream)
    assert order == ["a", "b1", "b2", "b3", "c", "d"]  # dvc.yaml's order where the DAG leaves a choice
    # the work on the longest chain from each stage: its own seconds (1 without a hint) and its longest dependant's
    assert critical_path(pipeline(root)) == {"a": 31, "b1": 2, "b2": 2, "b3": 30, "c": 1, "d": 1}
    assert [s.name for s in affected(pipeline(root), ["b2"])] == ["b2", "c"]
    assert {s.name for s in affected(pipeline(root), ["a"])} == {"a", "b1", "b2", "b3", "c"}


def test_stages_run_side_by_side_in_order_within_the_cores(repo, prefect_api, monkeypatch, tmp_path):
    root, log = repo
    # a and d are the two stages ready at the start: each waits until the other has started, so they overlap
    # however slowly the machine starts DVC, and only if two lanes really run them at once (else a waits 30 s alone)
    monkeypatch.setenv("STAGE_MEET", "a,d")
    monkeypatch.setenv("STAGE_MEET_DIR", str(tmp_path))
    done = lanes_flow(jobs=2, cpus=2)
    rows = {r["stage"]: r for r in runs(log)}
    assert sorted(done) == sorted(rows) == sorted(DAG)  # every stage ran, once
    for name, deps in DAG.items():
        for dep in deps:
            if dep.startswith("out/"):
                assert rows[name]["start"] >= rows[dep[4:]]["end"], (name, dep)
    assert rows["b3"]["start"] < rows["b2"]["start"]  # the longest chain of work first, not dvc.yaml's order
    # two lanes: some stages overlapped, and the threads of the stages running at any moment fit in 2 cores
    overlaps = [(a, b) for a in rows for b in rows if a < b and rows[a]["start"] < rows[b]["end"]
                and rows[b]["start"] < rows[a]["end"]]
    assert ("a", "d") in overlaps and all(rows[m]["end"] - rows[m]["start"] < 25 for m in "ad")  # they met in time
    for name, r in rows.items():
        beside = [rows[o] for o in rows if o != name and rows[o]["start"] < r["end"] and r["start"] < rows[o]["end"]]
        assert int(r["threads"]) + sum(int(o["threads"]) for o in beside) <= 2, (name, r, beside)
    assert dvc("status", "--json", cwd=root).stdout.strip() in ("{}", "")
    assert "Running stage" not in dvc("repro", cwd=root).stdout  # dvc.lock holds every stage

    monkeypatch.delenv("STAGE_MEET")
    (root / "other.txt").write_text("three")  # a change reruns only what is downstream of it
    lanes_flow(jobs=2, cpus=2)
    assert [r["stage"] for r in runs(log)] == ["d"]
    assert (root / "out/c").read_text() == "c:b1:a:one|b2:a:one"
    assert dvc("status", "--json", cwd=root).stdout.strip() in ("{}", "")


def test_a_failing_stage_is_named_and_the_others_are_kept(repo, prefect_api, monkeypatch):
    root, log = repo
    monkeypatch.setenv("FAIL_STAGE", "b2")
    with pytest.raises(RuntimeError, match=r"b2 failed.*not started: .*c"):
        lanes_flow(jobs=2, cpus=2)
    ran = {r["stage"] for r in runs(log)}
    assert "c" not in ran and "b2" not in ran and {"a", "d"} <= ran
    assert set(json.loads(dvc("status", "--json", cwd=root).stdout)) <= {"b1", "b2", "b3", "c"}
    monkeypatch.delenv("FAIL_STAGE")
    lanes_flow(jobs=2, cpus=2)  # resumes: what completed is not run again
    again = {r["stage"] for r in runs(log)}
    assert {"b2", "c"} <= again and not again & {"a", "d"}
    assert dvc("status", "--json", cwd=root).stdout.strip() in ("{}", "")


def test_retrain_refuses_fewer_than_one_lane(repo, prefect_api):
    from flows.retrain import retrain_flow

    root, log = repo
    before = (root / "dvc.yaml").read_text()
    with pytest.raises(ValueError, match="jobs must be at least 1, got 0"):
        retrain_flow("params.yaml", jobs=0)
    assert runs(log) == [] and (root / "dvc.yaml").read_text() == before and not (root / "dvc.lock").exists()


@pytest.mark.parametrize("seconds", ["soon", -5, True])
def test_a_stage_s_run_time_hint_must_be_seconds(repo, seconds):
    root, _ = repo
    spec = yaml.safe_load((root / "dvc.yaml").read_text())
    spec["stages"]["b1"]["meta"] = {"seconds": seconds}
    (root / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(ValueError, match=r"stage b1: meta.seconds must be a number of seconds >= 0 .*got "):
        pipeline(root)
    assert dvc("status", "--json", cwd=root).returncode == 0  # DVC itself accepts any meta
