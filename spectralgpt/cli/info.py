"""`spectralgpt info`: the named model configurations."""

from rich.console import Console
from rich.table import Table

from spectralgpt.cli.app import app


@app.command()
def info() -> None:
    """List the named model configurations."""
    from spectralgpt.models import model_config
    from spectralgpt.models.registry import MODEL_CONFIGS

    table = Table("name", "kind", "img", "bands", "token (u x p x p)", "width/depth/heads")
    for name in MODEL_CONFIGS:
        c = model_config(name)
        table.add_row(name, c.kind, str(c.img_size), str(c.num_bands), f"{c.t_patch_size}x{c.patch_size}x{c.patch_size}",
                      f"{c.embed_dim}/{c.depth}/{c.num_heads}")
    Console().print(table)
