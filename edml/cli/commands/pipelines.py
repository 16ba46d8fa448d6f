"""``edml pipelines list`` and ``edml pipelines show NAME``: the declared pipelines and what they derive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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
    _show_model(pipeline, fields, model)


def _show_model(pipeline: Pipeline, fields: dict, model: Path) -> None:
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
    typer.echo(json.dumps(prediction_schema(pipeline, fields[pipeline.input.key], signature), indent=1))


def register(app: typer.Typer) -> None:
    """Add ``pipelines list`` and ``pipelines show``."""
    app.add_typer(pipelines_app, name="pipelines")
