"""``up``, ``down`` and ``status`` of a local service (the Kafka broker, the schema registry), made once.

No ``from __future__ import annotations`` here: typer reads the commands' annotations, which are
made in ``service_app``'s scope, as objects.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer


@dataclass(frozen=True)
class ServiceCommands:
    """What the three commands need to know about one kind of local service."""

    label: str  # as the messages name it: "kafka", "schema registry"
    make: Callable[[Path, int], Any]  # (home, port) -> a LocalService
    address: Callable[[Any], str]  # the started service -> what clients are given
    home: Path
    up_port: int
    port_help: str
    other_port: int | None = None  # the default port of down and status (None: up_port)
    after_up: Callable[[Any, Path], None] | None = None
    healthy: Callable[[Any], bool] | None = None  # status also asks the service (None: a live pid suffices)


def service_app(commands: ServiceCommands, help_text: str, up_doc: str) -> typer.Typer:
    """A typer group with ``up``, ``down`` and ``status`` for ``commands``' service."""
    c = commands
    app = typer.Typer(help=help_text, no_args_is_help=True)
    home_opt = Annotated[Path, typer.Option("--home", help=f"Folder for the {c.label}'s pid, log and data.")]
    port_opt = Annotated[int, typer.Option("--port", help=c.port_help)]
    other = c.up_port if c.other_port is None else c.other_port

    def up(home: home_opt = c.home, port: port_opt = c.up_port) -> None:
        service = c.make(home, port)
        started = service.up()
        if c.after_up is not None:
            c.after_up(service, home)
        state = "started" if started else "already running"
        typer.echo(f"{c.label} {state} at {c.address(service)} (pid {service.pid()}, log {service.log_file})")

    def down(home: home_opt = c.home, port: port_opt = other) -> None:
        stopped = c.make(home, port).down()
        typer.echo(f"{c.label} stopped" if stopped else f"{c.label} was not running")

    def status(home: home_opt = c.home, port: port_opt = other) -> None:
        service = c.make(home, port)
        pid = service.pid()
        if pid is None:
            typer.echo(f"{c.label} is not running")
            raise typer.Exit(1)
        if c.healthy is not None and not c.healthy(service):
            typer.echo(f"{c.label} (pid {pid}) is starting or unhealthy; see {service.log_file}")
            raise typer.Exit(1)
        typer.echo(f"{c.label} running at {c.address(service)} (pid {pid})")

    up.__doc__ = up_doc
    down.__doc__ = f"Stop the local {c.label}."
    status.__doc__ = f"Say whether the local {c.label} runs; exits 1 when it does not."
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    return app
