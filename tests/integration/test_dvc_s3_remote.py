"""A DVC remote on the S3 API (dvc-s3) against an S3-compatible server on 127.0.0.1 (moto's server mode, a
random port): push a tracked raw folder and a stage output, drop the cache and the workspace copies, pull them
back, and `dvc status` (local and remote) reports nothing to do."""

import logging
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("dvc_s3")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_endpoint(monkeypatch):
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="spectralgpt")
    try:
        yield url
    finally:
        server.stop()


def dvc(*args, cwd):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", **CREDS}
    r = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, text=True, capture_output=True, env=env)
    assert r.returncode == 0, f"dvc {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_push_pull_round_trip_through_an_s3_api_remote(tmp_path, s3_endpoint):
    repo = tmp_path / "repo"
    raw = repo / "data" / "raw"
    raw.mkdir(parents=True)
    for k in range(5):
        (raw / f"scene-{k}.tif").write_bytes(os.urandom(2048))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc("init", "-q", cwd=repo)
    dvc("add", "-q", "data/raw", cwd=repo)
    dvc("stage", "add", "-q", "-n", "listing", "-d", "data/raw", "-o", "out/listing.txt",
        "python -c \"import os; os.makedirs('out', exist_ok=True); "
        "open('out/listing.txt', 'w').write(str(sorted(os.listdir('data/raw'))))\"", cwd=repo)
    dvc("repro", "-q", cwd=repo)
    dvc("remote", "add", "-d", "store", "s3://spectralgpt/dvcstore", cwd=repo)
    dvc("remote", "modify", "store", "endpointurl", s3_endpoint, cwd=repo)
    dvc("push", "-q", cwd=repo)
    objects = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="spectralgpt")
    assert objects["KeyCount"] >= 7  # 5 files, the folder's .dir listing, the stage output

    listing = (repo / "out" / "listing.txt").read_text()
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(raw)
    shutil.rmtree(repo / "out")
    dvc("pull", "-q", cwd=repo)
    assert sorted(p.name for p in raw.iterdir()) == [f"scene-{k}.tif" for k in range(5)]
    assert (repo / "out" / "listing.txt").read_text() == listing
    assert "up to date" in dvc("status", cwd=repo)
    assert "in sync" in dvc("status", "--cloud", cwd=repo)
