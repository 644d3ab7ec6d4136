"""The `spectralgpt` Typer application; command groups register themselves on it (see __init__)."""

import logging

import typer

app = typer.Typer(help="SpectralGPT: spectral remote-sensing foundation model.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
