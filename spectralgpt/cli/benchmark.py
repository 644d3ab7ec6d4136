"""`spectralgpt benchmark`: the frozen-encoder protocols (linear probe, k-NN, UPerNet) over the benchmark's
datasets, the paper-shaped table in ``reports/benchmark/<name>.md`` + ``.json``, tracked in MLflow.

    spectralgpt benchmark                                        # params.yaml's benchmark section
    spectralgpt benchmark --profile params/benchmark/upernet.yaml --set benchmark.encoder=models/pretrain
    spectralgpt benchmark --protocol knn --dataset eurosat --no-track
"""

from __future__ import annotations

from pathlib import Path

import typer

from spectralgpt.cli.app import app
from spectralgpt.cli.pipeline import PARAMS, SET, echo_json, load


@app.command()
def benchmark(params: Path = PARAMS,
              profile: Path = typer.Option(None, "--profile", help="a file of sections replacing params.yaml's, "
                                           "e.g. params/benchmark/knn.yaml"),
              protocol: list[str] = typer.Option(None, "--protocol", help="only these protocols: linear_probe | knn "
                                                 "| upernet (repeatable; default: benchmark.protocols)"),
              dataset: list[str] = typer.Option(None, "--dataset", help="only these datasets (repeatable)"),
              track: bool = typer.Option(True, "--track/--no-track", help="log the run to MLflow (tracking section)"),
              set_: list[str] = SET) -> None:
    """Benchmark an encoder with the field's protocols; writes a table shaped like the paper's."""
    from spectralgpt.stages.benchmark import benchmark as run_benchmark

    overrides = list(set_ or []) + ([f"benchmark.protocols={list(protocol)}"] if protocol else [])
    p = load(params, overrides, profile)
    cfg = p.benchmark_config()
    if not track:
        result = run_benchmark(cfg, datasets=dataset or None)
    else:
        from spectralgpt.tracking import stage_run

        t = p.tracking
        with stage_run("benchmark", cfg.model_dump(mode="json"), {"benchmark": cfg.name}, uri=t.uri,
                       experiment=t.experiment, artifacts=t.artifacts) as run:
            result = run_benchmark(cfg, run, datasets=dataset or None)
    typer.echo(result.markdown.read_text())
    echo_json({"markdown": str(result.markdown), "json": str(result.json), "encoder_digest": result.encoder_digest})
