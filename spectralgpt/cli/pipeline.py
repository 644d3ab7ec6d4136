"""Pipeline stages as commands: `spectralgpt data synth|ingest|preprocess`, `pretrain`, `finetune`, `evaluate`.
Each reads its section of params.yaml (validated before any work); `--set a.b=value` overrides a value."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml

from spectralgpt.cli.app import app

data_app = typer.Typer(help="Raw data: synthetic demo corpus, validation, shards.", no_args_is_help=True)
app.add_typer(data_app, name="data")

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="pipeline parameters")
SET = typer.Option(None, "--set", help="override a parameter: --set pretrain.mask_ratio=0.75 (repeatable)")


def load(params: Path, overrides: list[str] | None, profile: Path | None = None):
    from spectralgpt.config import ConfigError, load_params

    pairs = {}
    for item in overrides or []:
        if "=" not in item:
            raise typer.BadParameter(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        pairs[key] = yaml.safe_load(value)
    try:
        return load_params(params, pairs, profile=profile)
    except ConfigError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None


def task_config(p, task: str):
    from spectralgpt.config import ConfigError

    try:
        return p.finetune_for(task)
    except ConfigError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None


def task_option() -> str:
    """--task, one of the downstream tasks (`spectralgpt.tasks`); the CLI loads them only when asked."""
    from spectralgpt.tasks import FINETUNE_TASKS

    def check(value: str) -> str:
        if value not in FINETUNE_TASKS:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(FINETUNE_TASKS)}")
        return value

    return typer.Option(..., help="a downstream task: classification | multilabel | segmentation | change, or "
                        "any other module of spectralgpt.tasks", callback=check)


TASK = task_option()


def mlflow_callbacks() -> list:
    """Log to the MLflow run named by $SPECTRALGPT_MLFLOW_RUN_ID (set by the flows when they launch torchrun).

    Call it on every rank after `init_from_env`: across nodes, global rank 0 may sit on a node the flow did not
    start (c10d assigns ranks), so the run id and tracking URI come from whichever ranks have them. Only rank 0
    logs (the engine calls callbacks there only), so only rank 0 opens the tracking store."""
    import os

    from spectralgpt.training.distributed import all_gather, is_main

    mine = (os.environ.get("SPECTRALGPT_MLFLOW_RUN_ID"), os.environ.get("MLFLOW_TRACKING_URI"))
    run_id, uri = next((x for x in all_gather(mine) if x[0]), (None, None))
    if not run_id or not is_main():
        return []
    if uri and not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = uri
    from spectralgpt.tracking import MlflowLogger

    return [MlflowLogger(run_id)]


def echo_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@data_app.command("synth")
def synth(root: Path = typer.Option(None, help="output folder (default: data.raw of params.yaml)"),
          scale: str = typer.Option(None, help="tiny | small (default: data.synthetic.scale)"),
          seed: int = typer.Option(None), workers: int = typer.Option(2), params: Path = PARAMS,
          set_: list[str] = SET) -> None:
    """Write the deterministic synthetic Sentinel-2 demo corpus in the public datasets' layouts."""
    from spectralgpt.data.synthetic import generate_demo_corpus

    p = load(params, set_) if params.exists() else None
    root = root or Path(p.data.raw if p else "data/raw")
    summary = generate_demo_corpus(root, seed=seed if seed is not None else (p.data.synthetic.seed if p else 0),
                                   scale=scale or (p.data.synthetic.scale if p else "tiny"), workers=workers)
    echo_json({k: {kk: v for kk, v in s.items() if not isinstance(v, list)} for k, s in summary.items()})


@data_app.command("ingest")
def ingest(name: list[str] = typer.Option(None, help="only these corpora"), params: Path = PARAMS,
           set_: list[str] = SET) -> None:
    """List every raw sample and run the cheap checks (no decoding); write each corpus' manifest."""
    from spectralgpt.stages.ingest import ingest as run, summary

    out = run(load(params, set_), name or None)
    echo_json({k: summary(m) for k, m in out.items()})


@data_app.command("preprocess")
def preprocess(name: list[str] = typer.Option(None, help="only these corpora"), params: Path = PARAMS,
               set_: list[str] = SET) -> None:
    """Decode and check each sample once; write the usable ones as uint16 shards plus a parquet index, and each
    corpus' quarantine report."""
    from spectralgpt.stages.preprocess import preprocess_all

    out = preprocess_all(load(params, set_), name or None)
    echo_json({f"{k}/{split}" if split else k: {"items": r.n_items, "shards": r.n_shards,
                                                "quarantined": len(r.quarantine)}
               for k, parts in out.items() for split, r in parts.items()})


@data_app.command("pack")
def pack(src: Path = typer.Argument(..., help="folder tree of GeoTIFFs"),
         dst: Path = typer.Argument(..., help="output folder of shard-NNNNNN.tar"),
         members: int = typer.Option(1000, "--members", min=1, help="GeoTIFFs per tar")) -> None:
    """Pack GeoTIFFs into deterministic tar shards, each with an index beside it (resumable); `dvc add` the output,
    read it with kind: folder."""
    from spectralgpt.data.pack import pack as run

    r = run(src, dst, members)
    echo_json({"tars": len(r.tars), "members": r.members, "written": r.written, "skipped": r.skipped,
               "indexes_written": r.indexed})


@app.command()
def pretrain(params: Path = PARAMS, set_: list[str] = SET) -> None:
    """MAE pretraining (all stages). Runs under torchrun for DDP."""
    from spectralgpt.training.distributed import cleanup, init_from_env
    from spectralgpt.stages.pretrain import pretrain as run

    p = load(params, set_)
    init_from_env()
    try:
        result = run(p.pretrain, callbacks=mlflow_callbacks())
        echo_json(result.metrics)
    finally:
        cleanup()


@app.command()
def finetune(task: str = TASK,
             params: Path = PARAMS, set_: list[str] = SET) -> None:
    """Fine-tune the pretrained encoder for one downstream task. Runs under torchrun for DDP."""
    from spectralgpt.training.distributed import cleanup, init_from_env
    from spectralgpt.stages.finetune import finetune as run

    ft = task_config(load(params, set_), task)
    init_from_env()
    try:
        echo_json(run(ft, callbacks=mlflow_callbacks()).metrics)
    finally:
        cleanup()


@app.command()
def evaluate(task: str = TASK,
             params: Path = PARAMS, set_: list[str] = SET) -> None:
    """Evaluate a fine-tuned model on the held-out split; writes reports/<task>/."""
    from spectralgpt.stages.evaluate import evaluate as run

    p = load(params, set_)
    task_config(p, task)
    values = run(p, task)
    echo_json({k: v for k, v in values.items() if not isinstance(v, list)})


@app.command()
def runs(root: Path = typer.Option(Path("runs"), help="the run folders' root")) -> None:
    """List the training run folders with the content digests they were computed from (a stage removes its
    folder by itself when its inputs change)."""
    from spectralgpt.stages.runs import list_runs

    echo_json(list_runs(root))
