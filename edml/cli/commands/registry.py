"""``edml registry up|down|status``: the local schema registry (Apicurio Registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

registry_app = typer.Typer(help="Run a local Confluent-compatible schema registry (Apicurio) for development.",
                           no_args_is_help=True)

HomeOpt = Annotated[Path, typer.Option("--home", help="Folder for the registry's pid, log and data.")]
PortOpt = Annotated[int, typer.Option("--port", help="HTTP port on 127.0.0.1 (0: a free one, remembered in --home).")]


def _registry(home: Path, port: int):  # noqa: ANN202 - imported lazily
    from edml.kafka.local_broker import free_port
    from edml.schemas.local_registry import LocalRegistry

    remembered = home / "registry.port"
    if port == 0:
        try:
            port = int(remembered.read_text())
        except (OSError, ValueError):
            port = free_port()
    return LocalRegistry(home=home, port=port)


@registry_app.command("up")
def registry_up(home: HomeOpt = Path(".edml/registry"), port: PortOpt = 8081) -> None:
    """Fetch Apicurio Registry if needed and start it; a no-op when it already runs.

    Prints the URL to set as ``[schema_registry] url`` (or ``EDML_SCHEMA_REGISTRY_URL``).
    """
    registry = _registry(home, port)
    started = registry.up()
    (home / "registry.port").write_text(str(registry.port))
    state = "started" if started else "already running"
    typer.echo(f"schema registry {state} at {registry.url} (pid {registry.pid()}, log {registry.log_file})")


@registry_app.command("down")
def registry_down(home: HomeOpt = Path(".edml/registry"), port: PortOpt = 0) -> None:
    """Stop the local schema registry (its schemas stay in --home)."""
    stopped = _registry(home, port).down()
    typer.echo("schema registry stopped" if stopped else "schema registry was not running")


@registry_app.command("status")
def registry_status(home: HomeOpt = Path(".edml/registry"), port: PortOpt = 0) -> None:
    """Say whether the local schema registry runs and answers; exits 1 when it does not."""
    registry = _registry(home, port)
    pid = registry.pid()
    if pid is None:
        typer.echo("schema registry is not running")
        raise typer.Exit(1)
    if not registry.ready():
        typer.echo(f"schema registry (pid {pid}) is starting or unhealthy; see {registry.log_file}")
        raise typer.Exit(1)
    typer.echo(f"schema registry running at {registry.url} (pid {pid})")


def register(app: typer.Typer) -> None:
    """Add the registry group."""
    app.add_typer(registry_app, name="registry")
