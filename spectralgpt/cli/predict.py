"""`spectralgpt predict` (whole-scene maps) and `spectralgpt embed` (tile or sample embeddings).

Errors (a bad path, an existing output without --overwrite, an unknown device or model URI, a checkpoint that
does not load) are one line on stderr and exit code 2 (see `spectralgpt.cli.app`); the output path and the
device are checked before the model is loaded or anything is computed.
"""

from __future__ import annotations

from pathlib import Path

import typer

from spectralgpt.cli.app import app


def _device(name: str) -> str:
    """`name` when this machine can use it: the syntax (auto, cpu, cuda, cuda:N, mps) and the hardware."""
    import torch

    from spectralgpt.config import check_device

    name = check_device(name)
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is available here; use --device cpu or auto")
    if name.startswith("cuda:") and int(name.split(":")[1]) >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: Apple's MPS backend is not available here; use --device cpu or auto")
    return name


def _predictor(model: str, device: str, precision: str = "fp32"):
    from spectralgpt.inference import Predictor
    from spectralgpt.inference.resolve import resolve_model

    return Predictor.load(resolve_model(model), device=_device(device), precision=precision)


def _band_order(text: str | None, sensor: str | None, model_bands) -> tuple[str, ...] | None:
    """--band-order: comma-separated names (plain names of --sensor, or qualified: HLS:BLUE), or ``model``: the
    file's bands are the model's input bands in its order (`model_bands`: `Predictor.bands`)."""
    from spectralgpt.bands import canonical_list

    if text is None:
        if sensor is not None:
            raise ValueError("--sensor names the sensor of --band-order's plain names; give --band-order too")
        return None
    if text.strip().lower() == "model":
        return tuple(model_bands)
    return canonical_list([t for t in text.split(",") if t.strip()], sensor)


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: allowed are auto, none or an integer DN offset >= 0") from None


@app.command()
def predict(
    model: str = typer.Option(..., "--model", "-m", help="model folder, or models:/NAME@ALIAS, runs:/ID/PATH"),
    input: Path = typer.Option(..., "--input", "-i", help="scene: multi-band GeoTIFF, band-file folder or .tar"),
    output: Path = typer.Option(..., "--output", "-o", help="output Cloud-Optimized GeoTIFF"),
    input2: Path | None = typer.Option(None, "--input2", help="second date (change detection)"),
    overlap: float = typer.Option(0.25, min=0.0, max=0.95, help="tile overlap fraction"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    probabilities: bool = typer.Option(False, "--probabilities", help="add per-class probability bands"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue an interrupted run"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing output"),
    device: str = typer.Option("auto", help="torch device: auto (cuda when there is a GPU, else cpu), cpu, cuda:N, mps"),
    precision: str = typer.Option("auto", help="fp32 | bf16 | auto (bf16 where the CPU/GPU runs it natively)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    offset: str = typer.Option("auto", "--offset", help="Sentinel-2 DN offset to subtract: auto (from a SAFE "
                               "product's MTD_MSIL*.xml), none, or N (1000 for baseline >= 04.00 GeoTIFFs)"),
    band_order: str | None = typer.Option(None, "--band-order", help="bands of a multi-band file without band "
                                          "descriptions, comma-separated (B2,B3,... or HLS:BLUE,...), or `model`: "
                                          "the model's input bands in its order"),
    sensor: str | None = typer.Option(None, "--sensor", help="sensor of --band-order's plain names: s2, hls, oli, rgb"),
) -> None:
    """Predict a whole scene (any size) to a georeferenced Cloud-Optimized GeoTIFF."""
    from spectralgpt.inference.outputs import check_output
    from spectralgpt.inference.scene import predict_scene

    from spectralgpt.io.s2offset import check_option

    check_output(output, (input, input2), overwrite)  # before the model is loaded
    _device(device)
    offset = check_option(offset if offset in ("auto", "none") else _int(offset, "--offset"))
    _band_order(band_order, sensor, ())  # names checked before the model is loaded
    predictor = _predictor(model, device, precision)
    r = predict_scene(predictor, input, output, input2=input2, overlap=overlap,
                      batch_size=batch_size, probabilities=probabilities, resume=resume, progress=progress,
                      overwrite=overwrite, offset=offset, band_order=_band_order(band_order, sensor, predictor.bands))
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
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing output"),
    device: str = typer.Option("auto", help="torch device: auto (cuda when there is a GPU, else cpu), cpu, cuda:N, mps"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Encoder embeddings of every tile of a scene, or of every sample of a dataset."""
    if (input is None) == (dataset is None):
        raise typer.BadParameter("give either --input SCENE or --dataset KIND --root DIR")
    if dataset is not None and root is None:
        raise typer.BadParameter("--dataset needs --root DIR")
    from spectralgpt.inference.embed import embed_dataset, embed_scene
    from spectralgpt.inference.outputs import check_output

    check_output(output, (input, root), overwrite)  # before the model is loaded
    _device(device)
    predictor = _predictor(model, device)
    if input is not None:
        out = embed_scene(predictor, input, output, overlap=overlap, batch_size=batch_size, progress=progress,
                          overwrite=overwrite)
    else:
        from spectralgpt.data.sources import load_dataset

        ds = load_dataset(dataset, root, split=split, bands=predictor.bands)
        out = embed_dataset(predictor, ds, output, batch_size=batch_size, progress=progress, overwrite=overwrite)
    typer.echo(str(out))
