"""Model lifecycle after the record arrives: verify, unpack, load, check, warm up.

``load_model`` turns a ModelRecord and its archive into a LoadedModel, or raises
:class:`ModelRejected` with the reason. Nothing here touches the serving set: the caller
swaps only after every check passed, so a bad model never replaces a good one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edml.core.errors import Refusal
from edml.model_topic.artifact import (
    ArtifactError,
    Manifest,
    load_saved_model,
    safe_unpack,
    signature_of,
    verify_sha256,
)
from edml.model_topic.gate import GOLDEN_ATOL, GOLDEN_RTOL, signature_problems
from edml.schemas.records import ModelRecord, ModelSignature
from edml.scoring.serving import LoadedModel, bind_inputs


class ModelRejected(Refusal):
    """A model that must not serve; ``reason`` says why in one line."""


def check_signature(signature: ModelSignature) -> str:
    """The output name when ``signature`` fits the trip schema (the publish gate's rules)."""
    problems = signature_problems(signature)
    if problems:
        raise ModelRejected("signature does not fit the trip schema: " + "; ".join(problems))
    return signature.outputs[0].name


def warm_up(model: LoadedModel) -> None:
    """Score the golden rows shipped in the artifact and compare with their expected outputs."""
    golden = model.manifest.golden_inputs
    missing = [b.name for b in model.bindings if b.name not in golden]
    if missing:
        raise ModelRejected(f"golden rows lack inputs {missing}")
    try:
        outputs = model.predict_columns({b.name: golden[b.name] for b in model.bindings})
    except Exception as e:  # whatever TF raises here means the model cannot score trips
        raise ModelRejected(f"golden rows fail in the model: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    if not np.all(np.isfinite(outputs)):
        raise ModelRejected("golden rows give NaN or infinite outputs")
    expected = np.asarray(model.manifest.golden_outputs, dtype=np.float64)
    if expected.shape != outputs.shape:
        raise ModelRejected(f"golden rows give {outputs.shape[0]} outputs, the manifest expects {expected.shape[0]}")
    if not np.allclose(outputs, expected, rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL):
        worst = int(np.argmax(np.abs(outputs - expected)))
        raise ModelRejected(f"golden row {worst} gives {outputs[worst]:.3f}, "
                            f"the manifest expects {expected[worst]:.3f}")


def load_model(record: ModelRecord, archive: bytes, workdir: Path) -> LoadedModel:
    """Verify, unpack, load, check and warm up one model version."""
    try:
        verify_sha256(archive, record.sha256)
        dest = workdir / _safe_name(record.model_name) / _safe_name(record.version)
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
    output_name = check_signature(signature)
    model = LoadedModel(record=record, manifest=manifest, function=function,
                        bindings=bind_inputs(signature), output_name=output_name)
    warm_up(model)
    return model


def _safe_name(part: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in part)
    if not cleaned or cleaned in (".", ".."):
        return "_"
    return cleaned
