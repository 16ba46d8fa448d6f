"""Model lifecycle after the record arrives: verify, unpack, load, check, warm up.

``load_model`` turns a ModelRecord and its archive into a LoadedModel, or raises
:class:`ModelRejected` with the reason. Nothing here touches the serving set: the caller
swaps only after every check passed, so a bad model never replaces a good one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edml.core.errors import Refusal
from edml.model_topic.artifact import (
    ArtifactError,
    Manifest,
    load_saved_model,
    safe_unpack,
    signature_of,
    verify_sha256,
)
from edml.model_topic.gate import GOLDEN_ATOL, GOLDEN_RTOL, expected_golden, golden_mismatch, output_problems
from edml.model_topic.stores import StoreError, check_name
from edml.pipelines.bound import BoundPipeline
from edml.pipelines.constraints import ReferenceProblem, resolve
from edml.pipelines.predictions import output_fields, prediction_schema
from edml.pipelines.signature import bindings, model_problems
from edml.schemas.records import ModelRecord, ModelSignature
from edml.scoring.serving import LoadedModel, bind_inputs


class ModelRejected(Refusal):
    """A model that must not serve; ``reason`` says why in one line."""


def bind_model(record: ModelRecord, manifest: Manifest, function: Any, signature: ModelSignature,
               bound: BoundPipeline) -> LoadedModel:
    """A :class:`LoadedModel` of ``function`` for ``bound``, or :class:`ModelRejected` when the pipeline cannot feed it.

    The publish gate's rules (``edml.pipelines.signature.model_problems``); the model's reference
    resolves the pipeline's ``infer`` constraints.
    """
    problems = model_problems(bound, signature)
    if problems:
        raise ModelRejected(f"pipeline {bound.name} cannot feed this model: " + "; ".join(problems))
    pipeline = bound.pipeline
    fed = bindings(pipeline, bound.fields, signature)
    # only fields the model reads: a routed pipeline's fallback needs no reference of a field it does not read
    reads = {b.field for b in fed}
    inferred = tuple(c for c in pipeline.constraints if c.infer and c.field in reads)
    try:
        constraints = resolve(inferred, bound.fields, manifest.reference)
    except ReferenceProblem as e:
        raise ModelRejected(f"pipeline {bound.name}: {e}") from None
    return LoadedModel(record=record, manifest=manifest, function=function,
                       bindings=bind_inputs(signature, {b.model_input: b.field for b in fed
                                                        if b.field != b.model_input}),
                       outputs=tuple(signature.outputs),
                       output_fields=tuple((name, spec.name) for name, spec in output_fields(pipeline, signature)),
                       prediction_schema=prediction_schema(pipeline, bound.key, signature), constraints=constraints)


def warm_up(model: LoadedModel) -> None:
    """Score the golden rows shipped in the artifact and compare with their expected outputs.

    The output is checked by the publish gate's definitions (``gate.output_problems``,
    ``gate.golden_mismatch``): a model the gate refuses is refused here too, whoever wrote its record.
    """
    golden = model.manifest.golden_inputs
    missing = [b.name for b in model.bindings if b.name not in golden]
    if missing:
        raise ModelRejected(f"golden rows lack inputs {missing}")
    try:
        checked = model.call({b.source: golden[b.name] for b in model.bindings})
    except Exception as e:  # whatever TF raises here means the model cannot score events
        raise ModelRejected(f"golden rows fail in the model: {type(e).__name__}: {_first_line(e)}") from None
    problems = output_problems(checked)
    if problems:
        raise ModelRejected(f"golden rows: {problems[0]}")
    mismatch = golden_mismatch(checked, expected_golden(model.manifest.golden_outputs, model.outputs),
                               rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL)
    if mismatch:
        raise ModelRejected(f"golden rows: {mismatch}")


def record_problem(record: ModelRecord, key: str | None = None) -> str | None:
    """Why ``record`` (read under ``key``) is not a valid model record, or None.

    The key must equal the model name: the topic is compacted by key, so a record under another
    key would serve one name while the topic's desired state names another. A signature covers
    the model name, so with this check it covers the key too.
    """
    if key is not None and key != record.model_name:
        return f"record keyed {key!r} names model {record.model_name!r}; the key must be the model name"
    for value, what in ((record.model_name, "model name"), (record.version, "version")):
        try:
            check_name(value, what)
        except StoreError as e:
            if len(value) > 60:  # say so without echoing all of it
                return f"invalid record: {what} of {len(value)} characters ({value[:20]!r}...); at most 200 allowed"
            return f"invalid record: {e}"
    return None


def unpack_folder(workdir: Path, record: ModelRecord) -> Path:
    """Where the artifact of ``record`` is unpacked."""
    return workdir / _safe_name(record.model_name) / _safe_name(record.version)


def load_model(record: ModelRecord, archive: bytes, workdir: Path, bound: BoundPipeline) -> LoadedModel:
    """Verify, unpack, load, check against ``bound`` and warm up one model version.

    A rejected artifact's unpacked files are removed at once.
    """
    problem = record_problem(record)
    if problem:
        raise ModelRejected(problem)
    dest = unpack_folder(workdir, record)
    try:
        return _load(record, archive, dest, bound)
    except ModelRejected:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except OSError as e:  # a full disk, a name the file system refuses: this model cannot serve here
        shutil.rmtree(dest, ignore_errors=True)
        raise ModelRejected(f"cannot unpack the artifact: {e.strerror or e}") from None


def _load(record: ModelRecord, archive: bytes, dest: Path, bound: BoundPipeline) -> LoadedModel:
    try:
        verify_sha256(archive, record.sha256)
        if dest.exists():
            shutil.rmtree(dest)
        manifest: Manifest = safe_unpack(archive, dest)
        if (manifest.model_name, manifest.version) != (record.model_name, record.version):
            raise ModelRejected(f"artifact holds {manifest.model_name} {manifest.version}, "
                                f"the record names {record.model_name} {record.version}")
        function = load_saved_model(dest / "saved_model")
        signature = signature_of(function)
    except ArtifactError as e:
        raise ModelRejected(e.reason) from None
    model = bind_model(record, manifest, function, signature, bound)
    warm_up(model)
    return model


def prune_unpacked(workdir: Path, model_name: str, keep: set[str]) -> list[Path]:
    """Remove the unpacked folders of ``model_name``'s versions not in ``keep``; returns them."""
    root = workdir / _safe_name(model_name)
    kept = {_safe_name(v) for v in keep}
    removed = []
    if root.is_dir():
        for folder in root.iterdir():
            if folder.name not in kept:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def _safe_name(part: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in part)
    if not cleaned or cleaned in (".", ".."):
        return "_"
    return cleaned
