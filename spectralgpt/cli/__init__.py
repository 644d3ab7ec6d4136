"""The `spectralgpt` command. Each module below registers its commands on `app`."""

from spectralgpt.cli import benchmark, info, pipeline, predict, registry  # noqa: F401
from spectralgpt.cli.app import app

__all__ = ["app"]
