"""The model versions a replay scores with, loaded the way scorers load them.

A model is named by a version in the artifact store (``--model v3``), by a trained model folder
(``--model models/2024...``: packed in memory like the publisher would, labelled with the folder's
name), or -- for the champion of a gate -- by the record that is desired on the model topic now.
Every path ends in :func:`edml.scoring.loader.load_model`: sha256, safe unpack, signature check
and warm-up on the golden rows, exactly as in ``edml serve``.
"""

from __future__ import annotations

from pathlib import Path

from edml.model_topic.artifact import ArtifactError, pack_artifact, read_manifest, sha256_hex
from edml.model_topic.publisher import record_from_manifest
from edml.model_topic.stores import ArtifactMissing, StoreError, fetch_artifact, open_store
from edml.schemas.records import ModelRecord

from edml.core.config import Settings
from edml.core.errors import OperatorError
from edml.pipelines.bound import BoundPipeline
from edml.scoring.loader import ModelRejected, load_model
from edml.scoring.serving import LoadedModel


class ModelUnavailable(OperatorError):
    """A model named for a replay that cannot be found or loaded; the message says why."""


def is_model_folder(spec: str) -> bool:
    """Whether ``spec`` names a trained model folder (it has ``saved_model/``) rather than a version."""
    return (Path(spec) / "saved_model").is_dir()


def load_record(record: ModelRecord, archive: bytes, workdir: Path, what: str,
                bound: BoundPipeline | None = None) -> LoadedModel:
    """``load_model`` for pipeline ``bound`` (default: the default pipeline) with a one-line ModelUnavailable
    instead of ModelRejected."""
    if bound is None:
        from edml.pipelines.bound import open_pipeline

        bound = open_pipeline(None, Settings())
    try:
        return load_model(record, archive, workdir, bound)
    except ModelRejected as e:
        raise ModelUnavailable(f"{what} cannot score: {e.reason}") from None


def load_folder(model_dir: Path, name: str, label: str, workdir: Path,
                bound: BoundPipeline | None = None) -> LoadedModel:
    """A trained model folder, packed in memory as version ``label`` and loaded."""
    try:
        artifact = pack_artifact(model_dir, name, label)
    except ArtifactError as e:
        raise ModelUnavailable(f"model folder {model_dir}: {e.reason}") from None
    record = record_from_manifest(artifact.manifest, f"file://{Path(model_dir).resolve()}", artifact.sha256,
                                  len(artifact.data), published_at=artifact.manifest.created_at)
    return load_record(record, artifact.data, workdir, f"model folder {model_dir}", bound)


def load_version(store_uri: str, name: str, version: str, workdir: Path,
                 bound: BoundPipeline | None = None) -> LoadedModel:
    """Version ``version`` of ``name`` from the artifact store at ``store_uri``."""
    try:
        store = open_store(store_uri)
        uri = store.artifact_uri(name, version)
        data = store.get(uri)
        manifest = read_manifest(data)
    except ArtifactMissing:
        known = _known_versions(store_uri, name)
        raise ModelUnavailable(f"{name} has no version {version!r} in {store_uri} "
                               f"(known: {', '.join(known[-5:]) or 'none'}; or pass a model folder)") from None
    except StoreError as e:
        raise ModelUnavailable(f"artifact store {store_uri}: {e.reason}") from None
    except ArtifactError as e:
        raise ModelUnavailable(f"{name} {version} in {store_uri}: {e.reason}") from None
    if (manifest.model_name, manifest.version) != (name, version):
        raise ModelUnavailable(f"{uri} holds {manifest.model_name} {manifest.version}, not {name} {version}")
    record = record_from_manifest(manifest, uri, sha256_hex(data), len(data), published_at=manifest.created_at)
    return load_record(record, data, workdir, f"{name} {version}", bound)


def _known_versions(store_uri: str, name: str) -> list[str]:
    try:
        return open_store(store_uri).versions(name)
    except StoreError:
        return []


def load_desired(record: ModelRecord, workdir: Path, bound: BoundPipeline | None = None) -> LoadedModel:
    """The model of a record from the model topic, its artifact fetched from the URI it names."""
    try:
        data = fetch_artifact(record.artifact_uri)
    except StoreError as e:
        raise ModelUnavailable(f"champion {record.model_name} {record.version}: artifact {record.artifact_uri}: "
                               f"{e.reason}") from None
    return load_record(record, data, workdir, f"champion {record.model_name} {record.version}", bound)


def resolve_model(spec: str, settings: Settings, name: str, workdir: Path, label: str | None = None,
                  bound: BoundPipeline | None = None) -> LoadedModel:
    """The model ``spec`` names: a trained model folder, or a version in the settings' artifact store."""
    if is_model_folder(spec):
        folder = Path(spec)
        return load_folder(folder, name, label or folder.resolve().name, workdir, bound)
    if Path(spec).exists():
        raise ModelUnavailable(f"{spec} is neither a model version nor a trained model folder (no saved_model/)")
    return load_version(settings.artifact_store_uri, name, spec, workdir, bound)


def desired_champion(settings: Settings, name: str) -> ModelRecord | None:
    """The record of ``name`` that serves now (latest on the model topic), or None."""
    from confluent_kafka import KafkaException
    from edml.model_topic.history import desired_records
    from edml.model_topic.publisher import check_model_topic

    check_model_topic(settings, timeout=10)  # one clear line when the broker or topic is missing
    try:
        return desired_records(settings).get(name)
    except KafkaException as e:
        raise ModelUnavailable(f"cannot read the model topic {settings.topics.models} at "
                               f"{settings.bootstrap_servers} to find the champion ({e.args[0]}): "
                               "pass --against VERSION") from None
