"""A pipeline bound to its schemas and to a process's settings: what a job needs before it reads a topic.

:func:`bind_pipeline` reads the declaration's input (and label) schema, checks the declaration
against it and derives the column codec; every mistake is a
:class:`~edml.pipelines.declaration.PipelineError` (exit 2) raised before anything is read.
:func:`pipeline_settings` gives a pipeline its own topics, model name, state folder and consumer
groups: the settings' ``[topics]`` are the default pipeline's; another pipeline reads its declared
input and label topics and writes ``<pipeline>-predictions``, ``<pipeline>-dead-letter``, ... (or
what its ``[topics]`` table names), all under the settings' topic prefix. The model topic and the
model-status topic are shared by every pipeline.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edml.core.config import Settings, Topics
from edml.pipelines.constraints import Constraint
from edml.pipelines.declaration import (
    DEFAULT_PIPELINE,
    TOPIC_ROLES,
    Pipeline,
    check_declaration,
    load_pipeline,
    load_schema,
)
from edml.schemas.columnar import FieldSpec, RecordCodec


@dataclass(frozen=True)
class BoundPipeline:
    """A checked pipeline with its input schema, fields and column codec."""

    pipeline: Pipeline
    schema: dict[str, Any]
    fields: dict[str, FieldSpec]
    codec: RecordCodec
    label_schema: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """The pipeline's name."""
        return self.pipeline.name

    @property
    def key(self) -> FieldSpec:
        """The field that keys every event and every prediction."""
        return self.fields[self.pipeline.input.key]

    @property
    def declared_constraints(self) -> tuple[Constraint, ...]:
        """Constraints checked before any model: those not inferred from a model's reference."""
        return tuple(c for c in self.pipeline.constraints if not c.infer)


def registry_fetcher(settings: Settings) -> Callable[[str], dict[str, Any]] | None:
    """Subject -> its latest Avro schema from the settings' registry (None without a registry)."""
    if not settings.schema_registry_url:
        return None
    from edml.schemas.confluent import call_registry, make_client

    client = make_client(settings.schema_registry)

    def fetch(subject: str) -> dict[str, Any]:
        latest = call_registry(f"reading subject {subject}", lambda: client.get_latest_version(subject))
        return dict(json.loads(latest.schema.schema_str or "{}"))

    return fetch


def bind_pipeline(pipeline: Pipeline, fetch_subject: Callable[[str], dict[str, Any]] | None = None) -> BoundPipeline:
    """Read and check ``pipeline``'s schemas; raises ``PipelineError`` naming the pipeline and the field."""
    schema = load_schema(pipeline, pipeline.input.schema, fetch_subject)
    label_schema = None
    if pipeline.labels is not None:
        label_schema = load_schema(pipeline, pipeline.labels.schema, fetch_subject)
    fields = check_declaration(pipeline, schema, label_schema)
    return BoundPipeline(pipeline, schema, fields, RecordCodec.from_schema(schema), label_schema)


def open_pipeline(name: str | None, settings: Settings) -> BoundPipeline:
    """Load, read and check pipeline ``name`` (None: the default) with the settings' registry."""
    pipeline = load_pipeline(name or DEFAULT_PIPELINE)
    needs_registry = pipeline.input.schema.subject or (pipeline.labels and pipeline.labels.schema.subject)
    return bind_pipeline(pipeline, registry_fetcher(settings) if needs_registry else None)


def pipeline_topics(pipeline: Pipeline, topics: Topics) -> Topics:
    """The topics of ``pipeline`` given the settings' topics (see the module docstring)."""
    if pipeline.name == DEFAULT_PIPELINE:
        return topics
    named = {role: f"{pipeline.name}-{role.replace('_', '-')}" for role in TOPIC_ROLES}
    named.update(pipeline.topics)
    named["trips"] = pipeline.input.topic
    named["labels"] = pipeline.labels.topic if pipeline.labels is not None else f"{pipeline.name}-labels"
    return dataclasses.replace(topics, **{role: topics.prefix + name for role, name in named.items()})


def pipeline_settings(settings: Settings, pipeline: Pipeline) -> Settings:
    """``settings`` for a job of ``pipeline``: its topics, model name, state folder and name in group ids."""
    if pipeline.name == DEFAULT_PIPELINE:  # the settings' topics and model name are the default pipeline's
        return dataclasses.replace(settings, pipeline=pipeline.name)
    # the artifact store is shared like the model topic whose records point into it
    return dataclasses.replace(settings, pipeline=pipeline.name, model_name=pipeline.model,
                               artifact_store=settings.artifact_store_uri,
                               topics=pipeline_topics(pipeline, settings.topics),
                               state_dir=settings.state_dir / "pipelines" / pipeline.name)
