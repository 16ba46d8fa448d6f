"""``edml pipelines list`` and ``edml pipelines show NAME``: the declared pipelines and what they derive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, cast

import typer

from edml.cli.commands.options import ConfigOpt, settings_from, subject_fetcher
from edml.pipelines.declaration import (
    DEFAULT_PIPELINE,
    Pipeline,
    check_declaration,
    declared_names,
    load_pipeline,
    load_schema,
)

pipelines_app = typer.Typer(help="Pipelines declared in configuration: a topic, its schema and a model.",
                            no_args_is_help=True)


@pipelines_app.command("list")
def list_pipelines(config: ConfigOpt = None) -> None:
    """The names of every declared pipeline (built in, ./pipelines/*.toml, [pipelines.NAME] in edml.toml)."""
    for name in declared_names(config):
        typer.echo(name + ("  (default)" if name == DEFAULT_PIPELINE else ""))


@pipelines_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The pipeline's name.")] = DEFAULT_PIPELINE,
    model: Annotated[Path | None, typer.Option(
        "--model", help="A model folder (edml train --out) or a SavedModel folder: shows the model inputs it "
        "takes and the prediction schema its signature gives.")] = None,
    write: Annotated[bool, typer.Option(
        "--write", help="With --model: write the prediction schema as NAME.prediction.avsc beside the declaration "
        "(a built-in pipeline's in the pipelines folder), and register it under the predictions topics' subjects "
        "when a schema registry is configured.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Print the declaration, the input schema, the model inputs and the prediction schema of pipeline NAME.

    The declaration is checked against its input schema (and against the model's signature with
    --model); a mistake stops with one line naming the pipeline and the field.
    """
    pipeline = load_pipeline(name, config)
    # the settings (and a registry client) only when a schema is a registry subject
    needs_registry = pipeline.input.schema.subject or (pipeline.labels and pipeline.labels.schema.subject)
    fetch = subject_fetcher(settings_from(config), pipeline) if needs_registry else None
    schema = load_schema(pipeline, pipeline.input.schema, fetch)
    labels_schema = None
    if pipeline.labels is not None:
        labels_schema = load_schema(pipeline, pipeline.labels.schema, fetch)
    fields = check_declaration(pipeline, schema, labels_schema)
    typer.echo(f"# pipeline {pipeline.name}, declared in {pipeline.declared_in}")
    typer.echo(pipeline.text.rstrip() or "(no text)")
    typer.echo(f"\n# input schema ({pipeline.input.schema.describe()}), topic {pipeline.input.topic}")
    typer.echo(json.dumps(schema, indent=1))
    typer.echo("\n# constraints")
    for c in pipeline.constraints:
        typer.echo(f"{c.field}: {c.describe()}")
    if model is None:
        typer.echo(f"\n# model inputs of {', '.join(pipeline.models)}: each input <- the field of its name"
                   + "".join(f"; {k} <- {v}" for k, v in pipeline.inputs.items()))
        typer.echo("# prediction schema: derived from a model's signature; pass --model DIR to see it")
        return
    derived = _show_model(pipeline, fields, model)
    if write:
        _write_prediction_schema(pipeline, derived, config)


def _write_prediction_schema(pipeline: Pipeline, schema: dict, config: Path | None) -> None:
    from edml.pipelines.bound import pipeline_settings
    from edml.pipelines.declaration import BUILT_IN_DIR, pipelines_dir
    from edml.schemas.wire import topic_serdes

    declared = Path(pipeline.declared_in.split(" [pipelines.")[0])
    folder = declared.parent if declared.parent.resolve() != BUILT_IN_DIR.resolve() else pipelines_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pipeline.name}.prediction.avsc"
    path.write_text(json.dumps(schema, indent=1) + "\n")
    typer.echo(f"\n# written to {path}")
    settings = pipeline_settings(settings_from(config), pipeline)
    if settings.schema_registry_url:
        from edml.schemas.confluent import ConfluentSerde

        serdes = topic_serdes(settings)
        for topic in (settings.topics.predictions, settings.topics.shadow_predictions):
            serde = cast(ConfluentSerde[dict], serdes.for_schema(topic, schema))  # a registry: Confluent serdes
            typer.echo(f"# registered under {serde.subject} as schema id {serde.schema_id}")


def _show_model(pipeline: Pipeline, fields: dict, model: Path) -> dict:
    from edml.model_topic.artifact import SAVED_MODEL_DIR, read_signature
    from edml.pipelines.predictions import prediction_schema
    from edml.pipelines.signature import bindings, check_signature

    folder = model / SAVED_MODEL_DIR if (model / SAVED_MODEL_DIR).is_dir() else model
    signature = read_signature(folder)
    check_signature(pipeline, fields, signature)
    typer.echo(f"\n# model inputs ({model})")
    for b in bindings(pipeline, fields, signature):
        typer.echo(f"{b.model_input} ({b.dtype}) <- {b.field} ({b.field_type})")
    typer.echo("\n# prediction schema")
    schema = prediction_schema(pipeline, fields[pipeline.input.key], signature)
    typer.echo(json.dumps(schema, indent=1))
    return schema


def register(app: typer.Typer) -> None:
    """Add ``pipelines list`` and ``pipelines show``."""
    app.add_typer(pipelines_app, name="pipelines")
