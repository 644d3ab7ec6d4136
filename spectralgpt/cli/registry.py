"""`spectralgpt promote`, `spectralgpt rollback`, `spectralgpt models`: the model registry from a shell.

MLflow is imported inside the commands (through `spectralgpt.tracking`), so `spectralgpt --help` stays fast.
"""

import json
import os

import typer
from rich.console import Console
from rich.table import Table

from spectralgpt.cli.app import app

DEFAULT_URI = "sqlite:///mlflow.db"


def _uri_option():
    return typer.Option(None, "--tracking-uri", help=f"MLflow tracking URI (wins over $MLFLOW_TRACKING_URI; default: that, else {DEFAULT_URI})")


def _open(uri: str | None, ctx: typer.Context) -> str:
    from spectralgpt.tracking import TrackingError, check_tracking

    if uri:  # a flag typed now beats the environment, which beats params (MLflow's own precedence)
        before = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = uri
        ctx.call_on_close(lambda: _restore("MLFLOW_TRACKING_URI", before))
    try:
        return check_tracking(None)
    except TrackingError as e:
        _fail(e, 2)


def _fail(error: Exception, code: int):
    """One red line on stderr, then exit with `code` (no traceback)."""
    Console(stderr=True).print(f"[red]error:[/red] {error}")
    raise typer.Exit(code) from None


def _restore(name: str, value: str | None) -> None:
    """Put an environment variable back as the command found it (commands also run in-process, e.g. tests)."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


@app.command()
def promote(ctx: typer.Context, task: str = typer.Option(..., "--task", "-t", help="task whose challenger to consider"),
            margin: float = typer.Option(0.0, "--margin", min=0.0, help="how much the challenger must beat the champion by"),
            tracking_uri: str | None = _uri_option(),
            as_json: bool = typer.Option(False, "--json", help="print the decision as JSON")) -> None:
    """Make the challenger the champion if it beats it on the same evaluation data (by more than --margin)."""
    from spectralgpt.tracking import RegistryError
    from spectralgpt.tracking import promote as do_promote

    uri = _open(tracking_uri, ctx)
    try:
        d = do_promote(task, margin, uri=uri)
    except (RegistryError, ValueError) as e:
        _fail(e, 1)
    if as_json:
        typer.echo(json.dumps(d.to_dict(), indent=2))
        return
    colour = {"promoted": "green", "rejected": "yellow"}.get(d.decision, "cyan")
    Console().print(f"{d.name}: [{colour}]{d.decision}[/{colour}] challenger v{d.challenger_version or '-'} "
                    f"({d.metric} {_fmt(d.challenger_value)}) vs champion v{d.champion_version or '-'} "
                    f"({_fmt(d.champion_value)}): {d.reason}")


@app.command()
def rollback(ctx: typer.Context, task: str = typer.Option(..., "--task", "-t", help="task whose champion to roll back"),
             tracking_uri: str | None = _uri_option()) -> None:
    """Return the champion alias to the previous champion."""
    from spectralgpt.tracking import RegistryError
    from spectralgpt.tracking import rollback as do_rollback

    uri = _open(tracking_uri, ctx)
    try:
        r = do_rollback(task, uri=uri)
    except (RegistryError, ValueError) as e:
        _fail(e, 1)
    Console().print(f"{r.name}: champion rolled back from v{r.from_version} to v{r.to_version}")


@app.command()
def models(ctx: typer.Context, tracking_uri: str | None = _uri_option(),
           as_json: bool = typer.Option(False, "--json", help="print as JSON"),
           lineage_of: str | None = typer.Option(None, "--lineage", metavar="TASK",
                                                 help="print the lineage chain of TASK's champion (or --version)"),
           version: str | None = typer.Option(None, "--version", help="with --lineage: this version")) -> None:
    """Registered models: champion and challenger per task with their primary metric; `--lineage TASK`: the
    data, weights, code and params a version came from."""
    from dataclasses import asdict

    from spectralgpt.tracking import list_models

    uri = _open(tracking_uri, ctx)
    if lineage_of is not None:
        _print_lineage(lineage_of, version, uri, as_json)
        return
    rows = list_models(uri=uri)
    if as_json:
        typer.echo(json.dumps([asdict(m) for m in rows], indent=2))
        return
    if not rows:
        Console().print(f"no spectralgpt-* models registered in {uri}")
        return
    table = Table("model", "metric", "champion", "champion score", "challenger", "challenger score", "data version",
                  "versions", title=f"registered models ({uri})")
    for m in rows:
        ch, cl = m.champion, m.challenger
        table.add_row(m.name, m.primary_metric or "-", f"v{ch.version}" if ch else "-", _fmt(ch.value if ch else None),
                      f"v{cl.version}" if cl else "-", _fmt(cl.value if cl else None),
                      (cl or ch).data_version if (cl or ch) else "-", str(m.versions))
    Console(width=160).print(table)


def _print_lineage(task: str, version: str | None, uri: str, as_json: bool) -> None:
    from spectralgpt.tracking import RegistryError, lineage

    try:
        chain = lineage(task, version, uri=uri)
    except (RegistryError, ValueError) as e:
        _fail(e, 2)
    if as_json:
        typer.echo(json.dumps(chain, indent=2))
        return
    aliases = f" ({', '.join(chain['aliases'])})" if chain["aliases"] else ""
    table = Table("what", "value", title=f"{chain['name']} v{chain['version']}{aliases}: lineage")
    table.add_row("score", f"{chain['metric']} = {_fmt(chain['value'])}")
    table.add_row("MLflow run", str(chain["run_id"]))
    for k, v in chain["lineage"].items():
        table.add_row(k, v)
    Console(width=160).print(table)
