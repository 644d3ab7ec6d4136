"""The `spectralgpt` command."""

from __future__ import annotations

import typer

app = typer.Typer(help="SpectralGPT: spectral remote-sensing foundation model.", no_args_is_help=True)


@app.command()
def info() -> None:
    """List the named model configurations."""
    from rich.console import Console
    from rich.table import Table

    from spectralgpt.models import MODEL_CONFIGS

    table = Table("name", "kind", "img", "bands", "patch", "width/depth/heads")
    for name, cfg in MODEL_CONFIGS.items():
        table.add_row(name, cfg["kind"], str(cfg.get("img_size", 128)), str(cfg.get("in_chans", 12)),
                      f"{cfg.get('t_patch_size', 3)}x{cfg.get('patch_size', 8)}",
                      f"{cfg.get('embed_dim')}/{cfg.get('depth')}/{cfg.get('num_heads')}")
    Console().print(table)


if __name__ == "__main__":
    app()
