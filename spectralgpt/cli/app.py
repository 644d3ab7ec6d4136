"""The `spectralgpt` Typer application; command groups register themselves on it (see __init__).

A mistake of the user's (a bad path, an unknown device, a wrong ``models:/name@alias``, a checkpoint that does
not load, invalid parameters) ends every command the same way: one line ``error: ...`` on stderr and exit code 2,
never a traceback (`--verbose` logs the traceback at debug level). Anything else is a bug and keeps its traceback.
"""

import logging
import sys

import typer
from typer.core import TyperGroup

log = logging.getLogger("spectralgpt.cli")

#: exit code of every refused command (click uses 2 for usage errors too)
USER_ERROR = 2


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the user asked for something that cannot be done"; MLflow's only when it is
    already imported (the CLI does not import MLflow unless a command needs it)."""
    from spectralgpt.models.checkpoint import CheckpointError

    types: list[type[BaseException]] = [ValueError, KeyError, FileNotFoundError, NotADirectoryError,
                                        IsADirectoryError, PermissionError, CheckpointError]
    if "mlflow" in sys.modules:
        from mlflow.exceptions import MlflowException

        types.append(MlflowException)
    if "spectralgpt.tracking.registry" in sys.modules:
        from spectralgpt.tracking.registry import RegistryError

        types.append(RegistryError)
    return tuple(types)


def one_line(e: BaseException) -> str:
    """The message of `e` on one line (a KeyError's repr quotes are dropped)."""
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines) or type(e).__name__


class _Group(TyperGroup):
    """Maps the user's mistakes raised by any command to one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # typer's own exits and usage errors
            raise
        except Exception as e:
            if not isinstance(e, _user_error_types()):
                raise
            log.debug("command failed", exc_info=True)
            typer.echo(f"error: {one_line(e)}", err=True)
            raise typer.Exit(USER_ERROR) from None


app = typer.Typer(cls=_Group, help="SpectralGPT: spectral remote-sensing foundation model.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
