"""`spectralgpt predict` (whole-scene maps) and `spectralgpt embed` (tile or sample embeddings)."""

from __future__ import annotations

from pathlib import Path

import typer

from spectralgpt.cli.app import app


def _predictor(model: str, device: str, precision: str = "fp32"):
    from spectralgpt.inference import Predictor
    from spectralgpt.inference.resolve import resolve_model

    return Predictor.load(resolve_model(model), device=device, precision=precision)


@app.command()
def predict(
    model: str = typer.Option(..., "--model", "-m", help="model folder, or models:/NAME@ALIAS, runs:/ID/PATH"),
    input: Path = typer.Option(..., "--input", "-i", help="scene: multi-band GeoTIFF, band-file folder or .tar"),
    output: Path = typer.Option(..., "--output", "-o", help="output GeoTIFF"),
    input2: Path | None = typer.Option(None, "--input2", help="second date (change detection)"),
    overlap: float = typer.Option(0.25, min=0.0, max=0.95, help="tile overlap fraction"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    probabilities: bool = typer.Option(False, "--probabilities", help="add per-class probability bands"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue an interrupted run"),
    device: str = typer.Option("auto", help="torch device (auto: cuda when there is a GPU, else cpu)"),
    precision: str = typer.Option("auto", help="fp32 | bf16 | auto (bf16 where the CPU/GPU runs it natively)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Predict a whole scene (any size) to a georeferenced GeoTIFF."""
    from spectralgpt.inference.scene import predict_scene

    try:
        r = predict_scene(_predictor(model, device, precision), input, output, input2=input2, overlap=overlap,
                          batch_size=batch_size, probabilities=probabilities, resume=resume, progress=progress)
    except (ValueError, FileNotFoundError) as e:  # bad input (BadSample, SceneError): one clear line, exit 1
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{r.output}: {r.height} x {r.width}, {r.tiles_total} tiles ({r.tiles_computed} computed)")


@app.command()
def embed(
    model: str = typer.Option(..., "--model", "-m", help="model folder, or models:/NAME@ALIAS, runs:/ID/PATH"),
    output: Path = typer.Option(..., "--output", "-o", help=".parquet (GeoParquet) or .tif (scene only)"),
    input: Path | None = typer.Option(None, "--input", "-i", help="a scene to embed tile by tile"),
    dataset: str | None = typer.Option(None, "--dataset", help="dataset kind (eurosat, bigearthnet, oscd, ...)"),
    root: Path | None = typer.Option(None, "--root", help="dataset root folder"),
    split: str | None = typer.Option(None, "--split", help="train, val or test (default: all)"),
    overlap: float = typer.Option(0.0, min=0.0, max=0.95, help="tile overlap fraction (scenes)"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    device: str = typer.Option("auto", help="torch device (auto: cuda when there is a GPU, else cpu)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Encoder embeddings of every tile of a scene, or of every sample of a dataset."""
    if (input is None) == (dataset is None):
        raise typer.BadParameter("give either --input SCENE or --dataset KIND --root DIR")
    if dataset is not None and root is None:
        raise typer.BadParameter("--dataset needs --root DIR")
    from spectralgpt.inference.embed import embed_dataset, embed_scene

    try:
        predictor = _predictor(model, device)
        if input is not None:
            out = embed_scene(predictor, input, output, overlap=overlap, batch_size=batch_size, progress=progress)
        else:
            from spectralgpt.data.sources import load_dataset

            ds = load_dataset(dataset, root, split=split, bands=predictor.bands)
            out = embed_dataset(predictor, ds, output, batch_size=batch_size, progress=progress)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(str(out))
