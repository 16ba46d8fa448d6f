"""Options shared by many commands, and the settings they resolve to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edml.core.config import Settings, load_settings, redact_url

if TYPE_CHECKING:
    from edml.pipelines.declaration import Pipeline

BootstrapOpt = Annotated[
    str | None, typer.Option("--bootstrap-servers", "-b", help="Kafka bootstrap servers (env EDML_BOOTSTRAP_SERVERS).")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Config file (default edml.toml, env EDML_CONFIG).")]
MetricsHostOpt = Annotated[
    str | None,
    typer.Option("--metrics-host", help="Address /metrics binds (env EDML_METRICS_HOST; default 0.0.0.0, every "
                 "interface; 127.0.0.1: this host only)."),
]
StateDirOpt = Annotated[Path | None, typer.Option("--state-dir", help="State folder (env EDML_STATE_DIR).")]


def settings_from(config: Path | None = None, **overrides: object) -> Settings:
    """Settings from the config file and env, with the given flag values on top."""
    return load_settings(config).with_overrides(**overrides)


PipelineOpt = Annotated[
    str | None,
    typer.Option("--pipeline", envvar="EDML_PIPELINE",
                 help="The declared pipeline to work on (env EDML_PIPELINE; default taxi; see `edml pipelines list`)."),
]


def pipeline_settings_from(settings: Settings, pipeline: str | None) -> Settings:
    """``settings`` for pipeline ``pipeline`` (None: the default): its topics, model name and state folder.

    The declaration is read and checked against its schemas here, so a mistake stops the command
    with one line before anything is read.
    """
    from edml.pipelines.bound import open_pipeline, pipeline_settings

    bound = open_pipeline(pipeline, settings)
    return pipeline_settings(settings, bound.pipeline)


def subject_fetcher(settings: Settings, pipeline: Pipeline) -> Callable[[str], dict[str, Any]] | None:
    """Subject -> its latest Avro schema from the settings' registry, for ``pipeline``; None without a registry.

    A subject the registry refuses (not there, not Avro) stops with one line naming the pipeline.
    """
    from edml.pipelines.bound import registry_fetcher

    fetch = registry_fetcher(settings)
    if fetch is None:
        return None

    def checked(subject: str) -> dict[str, Any]:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            return fetch(subject)
        except SchemaRegistryError as e:
            registry = redact_url(settings.schema_registry_url)
            raise pipeline.error(f"schema subject {subject!r}: the registry at {registry} refused it "
                                 f"({e.error_message})") from None

    return checked

