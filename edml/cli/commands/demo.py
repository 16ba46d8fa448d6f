"""``edml demo``: the whole story on the local broker."""

from __future__ import annotations

from typing import Annotated

import typer

from edml.cli.commands.options import BootstrapOpt, ConfigOpt, settings_from
from edml.core.errors import OperatorError


def demo(
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
    trips: Annotated[int, typer.Option(min=100, help="Events per phase (before and after the swap).")] = 4000,
    rate: Annotated[float, typer.Option(min=1, help="Events per second.")] = 250.0,
    pipeline: Annotated[str, typer.Option("--pipeline", help="The story to tell: taxi (trip durations) or "
                                          "moderation (comments, alerts, AUC per version).")] = "taxi",
) -> None:
    """Train v1, publish, serve, stream events with live predictions, swap to v2, evaluate.

    ``--pipeline moderation`` tells the comment-moderation story: probabilities, alerts on the
    alert topic, a swap under traffic and live ROC AUC per version from the moderators' decisions.
    """
    from edml.kafka.topics import existing_topics

    settings = settings_from(config, bootstrap_servers=bootstrap_servers)
    existing_topics(settings)  # one clear line when the broker is not there
    if pipeline == "moderation":
        from edml.cli.moderation_demo import run_moderation_act

        run_moderation_act(settings, comments_per_phase=min(trips, 1500), rate=min(rate, 200.0))
    elif pipeline == "taxi":
        from edml.cli.demo import run_demo

        run_demo(settings, trips_per_phase=trips, rate=rate)
    else:
        raise OperatorError(f"the demo tells the taxi and the moderation stories, not {pipeline!r}: "
                            "use --pipeline taxi or --pipeline moderation")


def register(app: typer.Typer) -> None:
    """Add ``demo``."""
    app.command("demo")(demo)
