"""A short bounded run of benchmarks/serve_load.py against a real `mlflow models serve` on 127.0.0.1: zero failed
good requests under concurrent load, every bad request refused with a 4xx and a clear message, no URL fetched,
and the server still answering afterwards (~40 s on 2 cores, most of it the server's start)."""

def test_bounded_load_and_abuse_of_the_served_model(tmp_path, monkeypatch, benchmark_script):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    report = benchmark_script("serve_load").run(clients=2, duration=2.0, batch=2, max_requests=50, workdir=tmp_path)
    load = report["load"]
    assert load["errors"] == 0 and load["requests"] > 0, load["error_samples"]
    assert load["p50_ms"] <= load["p99_ms"]
    bad = report["abuse"]["bad"]
    assert len(bad) >= 10
    refused = {b["request"]: b for b in bad}
    for name, b in refused.items():
        assert 400 <= b["status"] < 500 and b["refused_clearly"], (name, b)
    assert report["abuse"]["urls_fetched"] == []
    assert report["abuse"]["good_during_abuse"] > 0 and report["abuse"]["good_failures_during_abuse"] == []
    assert report["after"]["answering"] and report["after"]["allowed_path_status"] == 200
    assert report["server_rss_mb"]["max"] > 0
