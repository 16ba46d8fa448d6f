"""The prediction record of a pipeline, derived from its model's signature.

Every output of the model becomes a field, under its own name or the one ``[outputs]`` gives it:
a scalar per record (shape ``[-1]`` or ``[-1, 1]``) as its Avro type, a short vector (``[-1, k]``,
k <= :data:`MAX_VECTOR`) as an array. Floating outputs are written as ``double`` whatever their
width, so a retrained model in float64 does not change the record. Then comes the lineage every
prediction carries: the key, the model name and version, the event time, when it was scored, the
latency, and the role (champion or challenger). For the taxi pipeline this is exactly
``schemas/avro/Prediction.avsc``.
"""

from __future__ import annotations

import re
from typing import Any

from edml.pipelines.declaration import LINEAGE_FIELDS, Pipeline
from edml.schemas.columnar import FieldSpec
from edml.schemas.records import ModelSignature, TensorSpec

MAX_VECTOR = 16
OUTPUT_TYPES = {
    "float16": "double", "bfloat16": "double", "float32": "double", "float64": "double",
    "int8": "int", "int16": "int", "int32": "int", "uint8": "int", "uint16": "int", "int64": "long",
    "bool": "boolean", "string": "string",
}
_AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _millis() -> dict[str, str]:
    return {"type": "long", "logicalType": "timestamp-millis"}


LINEAGE: list[dict[str, Any]] = [
    {"name": "model_name", "type": "string"},
    {"name": "model_version", "type": "string"},
    {"name": "event_time", "type": _millis(), "doc": "the input record's event time"},
    {"name": "scored_at", "type": _millis()},
    {"name": "latency_ms", "type": "double", "doc": "from the input record's Kafka timestamp to scoring"},
    {"name": "role", "type": "string", "default": "champion", "doc": "champion or challenger"},
]
assert tuple(f["name"] for f in LINEAGE) == LINEAGE_FIELDS
# what a pipeline declaring fallbacks or ensembles adds: why a fallback scored, which members combined
ROUTED_LINEAGE: list[dict[str, Any]] = [
    {"name": "fallback_reason", "type": ["null", "string"], "default": None,
     "doc": "why the fallback model scored this event (role fallback)"},
    {"name": "members", "type": ["null", {"type": "array", "items": "string"}], "default": None,
     "doc": "an ensemble's members as name@version"},
]


def lineage(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The lineage fields of ``pipeline``'s predictions: :data:`LINEAGE`, and :data:`ROUTED_LINEAGE` when it
    declares fallbacks or ensembles."""
    routed = bool(pipeline.fallbacks or pipeline.ensembles)
    return [dict(f) for f in LINEAGE] + ([dict(f) for f in ROUTED_LINEAGE] if routed else [])


def output_width(spec: TensorSpec) -> int | None:
    """1 for a scalar per record, k for a vector of k, None for a shape a record cannot hold."""
    shape = spec.shape
    if len(shape) == 1 and shape[0] == -1:
        return 1
    if len(shape) == 2 and shape[0] == -1 and 1 <= shape[1] <= MAX_VECTOR:
        return shape[1]
    return None


def output_fields(pipeline: Pipeline, signature: ModelSignature) -> list[tuple[str, TensorSpec]]:
    """(prediction field, model output) for every output, in the signature's order."""
    renamed = {output: record_field for record_field, output in pipeline.outputs.items()}
    return [(renamed.get(s.name, s.name), s) for s in signature.outputs]


def prediction_problems(pipeline: Pipeline, signature: ModelSignature) -> list[str]:
    """What keeps the model's outputs from making a prediction record (empty when they fit)."""
    problems = []
    if not signature.outputs:
        problems.append("the model has no outputs")
    taken = {pipeline.input.key} | {f["name"] for f in lineage(pipeline)}
    for name, spec in output_fields(pipeline, signature):
        if spec.dtype not in OUTPUT_TYPES:
            problems.append(f"model output {spec.name} is {spec.dtype}, which a prediction record cannot hold")
        width = output_width(spec)
        if width is not None and width > 1 and OUTPUT_TYPES.get(spec.dtype) == "string":
            problems.append(f"model output {spec.name} is a vector of strings, which a prediction record cannot hold")
        if width is None:
            problems.append(f"model output {spec.name} has shape {spec.shape}; a prediction holds [-1] (a value per "
                            f"record) or [-1, k] with k <= {MAX_VECTOR}")
        if not _AVRO_NAME.match(name):
            problems.append(f"model output {spec.name} is not an Avro field name; name it in [outputs]")
        elif name in taken:
            problems.append(f"model output {spec.name} would be prediction field {name}, which is taken; rename it "
                            "in [outputs]")
        taken.add(name)
    return problems


def prediction_schema(pipeline: Pipeline, key: FieldSpec, signature: ModelSignature) -> dict[str, Any]:
    """The Avro schema (JSON) of ``pipeline``'s predictions by a model with ``signature``.

    Raises the first of :func:`prediction_problems` as a :class:`~edml.pipelines.declaration.PipelineError`.
    """
    problems = prediction_problems(pipeline, signature)
    if problems:
        raise pipeline.error(problems[0])
    namespace, _, name = pipeline.prediction_record.rpartition(".")
    key_type: Any = key.type if key.type != "enum" else {"type": "enum", "name": f"{name}Key",
                                                         "symbols": list(key.symbols)}
    fields: list[dict[str, Any]] = [{"name": key.name, "type": key_type, "doc": "the input record's key"}]
    for field_name, spec in output_fields(pipeline, signature):
        avro = OUTPUT_TYPES[spec.dtype]
        width = output_width(spec)
        doc = f"model output {spec.name} ({spec.dtype}{'' if width == 1 else f' x {width}'})"
        fields.append({"name": field_name, "type": avro if width == 1 else {"type": "array", "items": avro},
                       "doc": doc})
    fields.extend(lineage(pipeline))
    schema: dict[str, Any] = {"type": "record", "name": name}
    if namespace:
        schema["namespace"] = namespace
    schema["doc"] = f"A prediction of pipeline {pipeline.name} with its lineage. Key: {key.name}."
    schema["fields"] = fields
    return schema
