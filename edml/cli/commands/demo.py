"""``edml demo``: the whole story on the local broker."""

from __future__ import annotations

from typing import Annotated

import typer

from edml.cli.commands.options import BootstrapOpt, ConfigOpt, settings_from


def demo(
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
    trips: Annotated[int, typer.Option(min=100, help="Trips per phase (before and after the swap).")] = 4000,
    rate: Annotated[float, typer.Option(min=1, help="Trips per second.")] = 250.0,
) -> None:
    """Train v1, publish, serve, stream trips with live predictions, swap to v2, evaluate."""
    from edml.cli.demo import run_demo
    from edml.kafka.topics import existing_topics

    settings = settings_from(config, bootstrap_servers=bootstrap_servers)
    existing_topics(settings)  # one clear line when the broker is not there
    run_demo(settings, trips_per_phase=trips, rate=rate)


def register(app: typer.Typer) -> None:
    """Add ``demo``."""
    app.command("demo")(demo)
