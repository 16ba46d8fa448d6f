"""Whether a model can score a pipeline: every model input fed by a record field of a type it takes.

The publish gate and the scorer ask the same question of a model's signature
(:func:`signature_problems`); ``edml serve`` asks it of the pipeline before it reads anything and
stops with one line (:func:`check_signature`).
"""

from __future__ import annotations

from dataclasses import dataclass

from edml.pipelines.bound import BoundPipeline
from edml.pipelines.declaration import Pipeline
from edml.schemas.columnar import FieldSpec
from edml.schemas.records import ModelSignature, TensorSpec

# Avro type of a record field -> tensor dtypes a model input fed by it may have. Integers may feed
# float inputs (a count as a float feature); a double may feed float32 (the taxi model's distance).
INPUT_DTYPES: dict[str, tuple[str, ...]] = {
    "boolean": ("bool",),
    "int": ("int32", "int64", "float32", "float64"),
    "long": ("int64", "int32", "float32", "float64"),
    "float": ("float32", "float64"),
    "double": ("float32", "float64"),
    "string": ("string",),
    "bytes": ("string",),
    "enum": ("string",),
}


@dataclass(frozen=True)
class InputBinding:
    """One model input and the record field that feeds it."""

    model_input: str
    field: str
    dtype: str
    field_type: str


def _scalar_batch(spec: TensorSpec) -> bool:
    return len(spec.shape) == 1 and spec.shape[0] == -1


def signature_problems(pipeline: Pipeline, fields: dict[str, FieldSpec], signature: ModelSignature) -> list[str]:
    """What keeps a model with ``signature`` from scoring ``pipeline`` (empty when it fits); each names the field.

    Every model input must be fed by a field (the one of the same name, or the one ``[inputs]``
    maps to it) whose type the input's dtype takes, one value per row (shape ``[-1]``); a field
    that may be null must be ``required``. ``[inputs]`` and ``[outputs]`` may name only inputs and
    outputs the model has. The outputs themselves are checked by :mod:`edml.pipelines.predictions`.
    """
    problems = []
    given = {s.name for s in signature.inputs}
    for model_input in sorted(set(pipeline.inputs) - given):
        problems.append(f"[inputs] maps model input {model_input}, which the model does not have")
    required = {c.field for c in pipeline.constraints if c.required}
    for spec in signature.inputs:
        name = pipeline.field_for(spec.name)
        f = fields.get(name)
        if f is None:
            problems.append(f"model input {spec.name} is fed by no field (the input schema has no field {name}; "
                            "map one in [inputs])")
            continue
        if spec.dtype not in INPUT_DTYPES.get(f.type, ()):
            problems.append(f"model input {spec.name} is {spec.dtype}, which field {name} ({f.describe()}) cannot "
                            f"feed (a {f.type} feeds {' or '.join(INPUT_DTYPES.get(f.type, ())) or 'no input'})")
        if not _scalar_batch(spec):
            problems.append(f"model input {spec.name} has shape {spec.shape}, expected [-1] (one value per record)")
        if f.nullable and name not in required:
            problems.append(f"field {name} may be null but model input {spec.name} cannot take null: declare "
                            f"{name} = {{ required = true }} in [constraints]")
    outputs = {s.name for s in signature.outputs}
    for record_field, output in sorted(pipeline.outputs.items()):
        if output not in outputs:
            problems.append(f"[outputs] {record_field} = {output!r}: the model has no output {output} "
                            f"(it has {sorted(outputs)})")
    return problems


def bindings(pipeline: Pipeline, fields: dict[str, FieldSpec], signature: ModelSignature) -> list[InputBinding]:
    """Model input <- record field, for a signature without :func:`signature_problems`."""
    return [InputBinding(s.name, pipeline.field_for(s.name), s.dtype, fields[pipeline.field_for(s.name)].describe())
            for s in signature.inputs]


def model_problems(bound: BoundPipeline, signature: ModelSignature) -> list[str]:
    """Everything that keeps a model with ``signature`` from scoring ``bound``: inputs, outputs, alert rules."""
    from edml.pipelines.alerts import rule_problems
    from edml.pipelines.predictions import OUTPUT_TYPES, output_fields, output_width, prediction_problems

    problems = signature_problems(bound.pipeline, bound.fields, signature) + prediction_problems(bound.pipeline,
                                                                                                 signature)
    if problems or not bound.pipeline.alerts:
        return problems
    fields = dict(bound.fields)
    for name, spec in output_fields(bound.pipeline, signature):
        fields[name] = FieldSpec(name, OUTPUT_TYPES[spec.dtype] if output_width(spec) == 1 else "array")
    return [p for rule in bound.pipeline.alerts for p in rule_problems(rule, fields)]


def check_signature(pipeline: Pipeline, fields: dict[str, FieldSpec], signature: ModelSignature) -> None:
    """Raise the first of :func:`signature_problems` as a :class:`PipelineError` (one line, exit 2)."""
    from edml.pipelines.predictions import prediction_problems

    problems = signature_problems(pipeline, fields, signature) + prediction_problems(pipeline, signature)
    if problems:
        raise pipeline.error(problems[0])
