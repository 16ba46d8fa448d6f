"""The publisher: trained model folder -> gated artifact in the store -> record on the model topic.

Order matters: the artifact is uploaded first and the record is produced only after the
upload succeeded, so a record never points at a missing artifact. Every refusal (gate, broken
folder, existing version, unreachable store or broker) happens before the record is produced:
the topic is left unchanged.

The record is keyed by model name (``encode_model_key``) on the compacted model topic and
produced by an idempotent producer; ``publish_record`` waits for the delivery report.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from edml.model_topic.artifact import (
    SAVED_MODEL_DIR,
    ArtifactError,
    Manifest,
    load_model_folder,
    pack_folder,
    read_manifest,
    read_model_folder,
    sha256_hex,
    signature_of,
    verify_sha256,
)
from edml.model_topic.gate import DEFAULT_TOLERANCE, GateResult, check
from edml.model_topic.history import desired_records, record_history
from edml.model_topic.stores import ArtifactStore, StoreError, VersionExists, check_name, open_store
from edml.model_topic.versioning import Revision, current_revision, next_version, version_prefix
from edml.schemas.records import ModelRecord
from edml.schemas.serde import encode_model_key
from edml.schemas.wire import topic_serdes

from edml.core.config import Settings
from edml.core.errors import OperatorError, Refusal
from edml.kafka.clients import make_admin, make_producer
from edml.pipelines.bound import BoundPipeline, open_pipeline
from edml.pipelines.signature import model_problems

__all__ = [
    "PublishError",
    "TopicUnavailable",
    "desired_records",
    "publish_model",
    "publish_record",
    "record_history",
    "retire_model",
    "rollback",
]

log = logging.getLogger(__name__)
DELIVERY_TIMEOUT_S = 30.0
_VERSION_RACE_RETRIES = 5


class PublishError(Refusal):
    """The record could not be delivered to the model topic; ``reason`` is one line."""


class TopicUnavailable(PublishError, OperatorError):
    """The broker cannot be reached or the model topic does not exist."""


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return int(time.time() * 1000)


def check_model_topic(settings: Settings, timeout: float = 15.0) -> None:
    """Raise TopicUnavailable unless the broker answers and the model topic exists."""
    topic = settings.topics.models
    try:
        # all topics, not list_topics(topic=...): a metadata request naming one topic may create it
        # (non-compacted) on a broker with auto.create.topics.enable
        metadata = make_admin(settings, quiet=True).list_topics(timeout=timeout)
    except KafkaException as e:
        raise TopicUnavailable(f"cannot reach Kafka at {settings.bootstrap_servers}: {e.args[0]}") from None
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        raise TopicUnavailable(f"model topic {topic} does not exist at {settings.bootstrap_servers}: "
                               "run `edml topics create`")


def publish_record(settings: Settings, record: ModelRecord | None, *, model_name: str | None = None) -> None:
    """Produce ``record`` keyed by its model name and wait for the delivery report.

    ``record=None`` with ``model_name`` produces a tombstone (the name stops serving).
    Raises :class:`PublishError` when the broker does not acknowledge it.
    """
    name = record.model_name if record is not None else model_name
    if not name:
        raise ValueError("a tombstone needs model_name")
    publish_records(settings, [(name, record)])


def publish_records(settings: Settings, records: list[tuple[str, ModelRecord | None]]) -> None:
    """Produce (model name, record or tombstone) pairs in this order, in one flush, and wait for every report.

    Records produced together reach a scorer in one fetch, as a rule: the last one per name is
    what it applies (a challenger's own record, then the champion's naming it, serve as one change).
    """
    check_model_topic(settings)
    outcome: list[KafkaError | None] = []
    # the flush sends at once; the linger keeps the records from leaving one by one before it, so they
    # travel in one batch and reach a scorer in one fetch
    producer = make_producer(settings, message_timeout_ms=int(DELIVERY_TIMEOUT_S * 1000), linger_ms=1000)
    for name, record in records:
        value = topic_serdes(settings).models.encode(record) if record is not None else None
        producer.produce(
            settings.topics.models,
            key=encode_model_key(name),
            value=value,
            on_delivery=lambda err, _msg: outcome.append(err),
        )
    remaining = producer.flush(DELIVERY_TIMEOUT_S + 5)
    names = ", ".join(name for name, _ in records)
    if remaining or len(outcome) < len(records):
        raise PublishError(f"no delivery report for {names} within {DELIVERY_TIMEOUT_S:.0f}s")
    failed = next((err for err in outcome if err is not None), None)
    if failed is not None:
        raise PublishError(f"model topic {settings.topics.models} refused {names}: {failed.str()}")


def record_from_manifest(
    manifest: Manifest, artifact_uri: str, sha256: str, size_bytes: int, published_at: int | None = None
) -> ModelRecord:
    """The model record for an artifact with ``manifest`` stored at ``artifact_uri``."""
    return ModelRecord(
        model_name=manifest.model_name,
        version=manifest.version,
        artifact_uri=artifact_uri,
        sha256=sha256,
        size_bytes=size_bytes,
        signature=manifest.signature,
        trained_at=manifest.created_at,
        metrics=dict(manifest.metrics),
        git_sha=manifest.git_sha,
        data_window_start=manifest.data_window_start,
        data_window_end=manifest.data_window_end,
        trainer_params=dict(manifest.trainer_params),
        published_at=published_at if published_at is not None else now_ms(),
    )


def _sign(record: ModelRecord, signing_key: str | Path | bytes | None) -> ModelRecord:
    if signing_key is None:
        return record
    from edml.model_topic.signing import read_key, sign_record

    return sign_record(record, read_key(signing_key))


def _upload(
    store: ArtifactStore, manifest: Manifest, saved_model: Path, prefix: str, explicit: bool
) -> tuple[Manifest, str, bytes]:
    """Pack and put; with an automatic version, a racing publisher's N makes us take the next."""
    for _ in range(_VERSION_RACE_RETRIES):
        data = pack_folder(saved_model, manifest)
        try:
            return manifest, store.put(manifest.model_name, manifest.version, data), data
        except VersionExists:
            if explicit:
                raise
            bumped = next_version(prefix, [*store.versions(manifest.model_name), manifest.version])
            manifest = dataclasses.replace(manifest, version=bumped)
    raise VersionExists(f"{manifest.model_name}: {_VERSION_RACE_RETRIES} build numbers after {prefix} were taken")


def publish_model(
    settings: Settings,
    model_dir: Path,
    name: str,
    *,
    force: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    store_uri: str | None = None,
    signing_key: str | Path | bytes | None = None,
    version: str | None = None,
    revision: Revision | None = None,
    pipeline: BoundPipeline | None = None,
    then: Callable[[ModelRecord], list[ModelRecord]] | None = None,
) -> ModelRecord:
    """Gate, upload and publish the trainer's folder ``model_dir`` as model ``name`` for ``pipeline``.

    ``then`` (the new record -> records to produce right after it, in the same flush) publishes
    it as a shadow challenger: the champion's record naming it follows it at once.

    ``pipeline`` (default: the settings' pipeline) is what the model's signature is checked against.

    The version is ``version`` when given (refused if the store has it), else
    ``<project>-<commit time>-<sha7>-<N>`` with the next N for that revision in the store.
    ``signing_key`` (PEM bytes, PEM text or a path) signs the record with ed25519.
    Raises ArtifactError (broken folder), GateRefused, StoreError, PublishError; in every
    case before the record is produced, the topic is unchanged.
    """
    check_name(name, "model name")
    if version is not None:
        check_name(version, "version")
    if tolerance < 0:
        raise OperatorError(f"tolerance {tolerance} must be >= 0")
    model_dir = Path(model_dir)
    store = open_store(store_uri or settings.artifact_store_uri)
    check_model_topic(settings)

    serving_fn = load_model_folder(model_dir)
    signature = signature_of(serving_fn)
    revision = revision or current_revision()
    manifest = read_model_folder(model_dir, name, version or "unversioned", signature=signature, git_sha=revision.sha)
    current = desired_records(settings).get(name)
    bound = pipeline or open_pipeline(settings.pipeline, settings)
    result: GateResult = check(
        serving_fn, signature, manifest.golden_inputs, manifest.golden_outputs, manifest.metrics, current,
        signature_problems=lambda s: model_problems(bound, s), tolerance=tolerance, force=force,
    )
    if result.forced_reason:
        log.warning("publishing despite the gate (--force): %s", result.forced_reason)

    prefix = version_prefix(revision)
    explicit = version is not None
    if not explicit:
        manifest = dataclasses.replace(manifest, version=next_version(prefix, store.versions(name)))
    manifest, uri, data = _upload(store, manifest, model_dir / SAVED_MODEL_DIR, prefix, explicit)
    record = _sign(record_from_manifest(manifest, uri, sha256_hex(data), len(data)), signing_key)
    try:
        publish_records(settings, [(r.model_name, r) for r in (record, *(then(record) if then else ()))])
    except PublishError as e:
        raise PublishError(f"artifact stored at {uri} but the record was not published: {e.reason}") from None
    return record


def _record_from_store(store: ArtifactStore, name: str, version: str) -> ModelRecord:
    uri = store.artifact_uri(name, version)
    data = store.get(uri)
    manifest = read_manifest(data)
    if (manifest.model_name, manifest.version) != (name, version):
        raise ArtifactError(f"{uri} holds {manifest.model_name} {manifest.version}, not {name} {version}")
    return record_from_manifest(manifest, uri, sha256_hex(data), len(data))


def rollback(
    settings: Settings,
    name: str,
    to_version: str,
    *,
    store_uri: str | None = None,
    signing_key: str | Path | bytes | None = None,
) -> ModelRecord:
    """Make ``to_version`` the desired model of ``name`` again by publishing its record.

    The record is the newest one on the topic's history that scorers accept (the same bytes,
    the same signature): its artifact matches its sha256 and names its version, and with a
    model public key set its signature verifies. Without one, it is rebuilt from the
    artifact's manifest in the store.
    """
    check_name(name, "model name")
    check_model_topic(settings)
    matches = [r for r in record_history(settings, name) if r.version == to_version]
    store = open_store(store_uri or settings.artifact_store_uri)
    refused = []
    for candidate in reversed(matches):  # the newest accepted record, never merely the newest one
        problem = _acceptance_problem(settings, name, candidate)
        if problem is None:
            record = candidate
            break
        refused.append(problem)
        log.warning("rollback: a record of %s %s on the topic is not one scorers accept: %s", name, to_version, problem)
    else:
        if to_version not in store.versions(name):
            why = f" (its records on the topic are not accepted: {refused[0]})" if refused else ""
            raise OperatorError(f"{name} has no version {to_version} on the model topic or in {store.uri}{why}")
        record = _record_from_store(store, name, to_version)
    if signing_key is not None:
        record = _sign(record, signing_key)
    publish_record(settings, record)
    return record


def _acceptance_problem(settings: Settings, name: str, record: ModelRecord) -> str | None:
    """Why scorers would refuse ``record`` of ``name`` before loading it, or None when they accept it.

    Accepted means: it names ``name`` (the topic key), its artifact is in the store with the
    record's sha256 and holds that name and version, and, with a model public key set, its
    signature verifies.
    """
    if record.model_name != name:
        return f"the record names {record.model_name}"
    if settings.model_public_key:
        from edml.model_topic.signing import SignatureInvalid, read_key, verify_record

        try:
            verify_record(record, read_key(settings.model_public_key))
        except SignatureInvalid as e:
            return e.reason
    try:
        data = open_store(record.artifact_uri).get(record.artifact_uri)
        verify_sha256(data, record.sha256)
        manifest = read_manifest(data)
    except (ArtifactError, StoreError) as e:
        return e.reason
    if (manifest.model_name, manifest.version) != (record.model_name, record.version):
        return f"its artifact holds {manifest.model_name} {manifest.version}"
    return None


def retire_model(settings: Settings, name: str) -> None:
    """Publish a tombstone for ``name``: scorers stop serving it (events wait for a new model)."""
    check_name(name, "model name")
    publish_record(settings, None, model_name=name)
