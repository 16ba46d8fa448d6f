"""``edml kafka up|down|status`` and ``edml topics create|list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edml.cli.commands.local_service import ServiceCommands, service_app
from edml.cli.commands.options import BootstrapOpt, ConfigOpt, PipelineOpt, pipeline_settings_from, settings_from

topics_app = typer.Typer(help="Create and list the topics edml uses.", no_args_is_help=True)


def _broker(home: Path, port: int):  # noqa: ANN202 - imported lazily
    from edml.kafka.local_broker import LocalBroker

    return LocalBroker(home=home, port=port, controller_port=port + 1)


kafka_app = service_app(
    ServiceCommands("kafka", _broker, lambda broker: broker.bootstrap_servers, Path(".edml/kafka"), 9092,
                    "Client port on 127.0.0.1."),
    "Run a local Apache Kafka broker (KRaft) for development.",
    "Fetch the Kafka jars if needed and start the broker; a no-op when it already runs.",
)


@topics_app.command("create")
def topics_create(
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
    partitions: Annotated[int | None, typer.Option(help="Partitions of the data topics (env EDML_PARTITIONS).")] = None,
    pipeline: PipelineOpt = None,
) -> None:
    """Create every topic a pipeline uses, idempotently (the model topic compacted)."""
    from edml.kafka.topics import create_topics

    settings = settings_from(config, bootstrap_servers=bootstrap_servers, partitions=partitions)
    settings = pipeline_settings_from(settings, pipeline)
    for name, state in create_topics(settings).items():
        typer.echo(f"{state:8} {name}")


@topics_app.command("list")
def topics_list(config: ConfigOpt = None, bootstrap_servers: BootstrapOpt = None, pipeline: PipelineOpt = None) -> None:
    """List a pipeline's topics with their layout and whether each exists."""
    from edml.kafka.topics import existing_topics, topic_specs

    settings = pipeline_settings_from(settings_from(config, bootstrap_servers=bootstrap_servers), pipeline)
    present = existing_topics(settings)
    for spec in topic_specs(settings):
        mark = "ok" if spec.name in present else "missing"
        extra = " ".join(f"{k}={v}" for k, v in spec.config.items() if k == "cleanup.policy")
        typer.echo(f"{mark:8} {spec.name:24} partitions={spec.partitions} {extra}".rstrip())


def register(app: typer.Typer) -> None:
    """Add the kafka and topics groups."""
    app.add_typer(kafka_app, name="kafka")
    app.add_typer(topics_app, name="topics")
