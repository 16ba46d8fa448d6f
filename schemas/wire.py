"""The one wire-format switch: every topic's serde, for the settings.

Without a schema registry (the default) every value is in Avro single-object encoding
(``schemas.serde``). With ``[schema_registry] url`` set, every value is in the Confluent wire
format with its schema under ``<topic>-value`` (``schemas.confluent``). :func:`topic_serdes`
builds both kinds from the settings, once per process; every producer and consumer of every
topic takes its serde from there, so a process cannot write one format and read another.

Every serde offers the same :class:`RecordSerde` methods, so callers never ask which one they
hold. (The model store's local records and the signing bytes of a model record are not on a
topic: they stay single-object.)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from edml.schemas import records
from edml.schemas.serde import CONFLUENT_MAGIC, AvroSerde, DecodeError, serde_for

if TYPE_CHECKING:
    from edml.core.config import SchemaRegistrySettings, Settings, Topics

T = TypeVar("T")


class RecordSerde(Protocol[T]):
    """What every serde offers, whatever its wire format."""

    record_type: type[T]
    schema_json: dict[str, Any]
    fingerprint: bytes

    def encode(self, record: T) -> bytes:
        """The record as a message value."""
        ...

    def encode_columns(self, columns: dict[str, Any], n: int) -> list[bytes]:
        """``n`` records given by column, as message values."""
        ...

    def decode(self, payload: bytes | None) -> T:
        """The record in a message value; raises ``schemas.serde.DecodeError`` only."""
        ...

    def own_header(self) -> bytes | None:
        """The bytes before the body of what this serde writes, when known without a registry call."""
        ...


# topic role (a field of Topics) -> the record its values hold
RECORDS = {
    "predictions": "Prediction",
    "shadow_predictions": "Prediction", "models": "ModelRecord", "model_status": "ModelStatus",
    "dead_letter": "DeadLetter", "evaluations": "Evaluation", "scores": "ScoreWindow", "alerts": "DriftAlert",
    "autopilot": "AutopilotEvent",
}


@dataclass(frozen=True)
class TopicSerdes:
    """The serde of every topic edml reads or writes, in the wire format the settings choose."""

    predictions: RecordSerde[records.Prediction]
    shadow_predictions: RecordSerde[records.Prediction]
    models: RecordSerde[records.ModelRecord]
    model_status: RecordSerde[records.ModelStatus]
    dead_letter: RecordSerde[records.DeadLetter]
    evaluations: RecordSerde[records.Evaluation]
    scores: RecordSerde[records.ScoreWindow]
    alerts: RecordSerde[records.DriftAlert]
    autopilot: RecordSerde[records.AutopilotEvent]
    topics: Topics
    registry_url: str = ""
    registry_client: Any = None  # one client (one cache of ids and schemas) for every topic

    def for_serde(self, topic: str, serde: AvroSerde[T]) -> RecordSerde[T]:
        """``serde``'s records on ``topic`` in this wire format (a pipeline's own record types, e.g. the taxi's)."""
        if self.registry_client is None:
            return serde
        from edml.schemas.confluent import ConfluentSerde, subject_for

        cache = self.__dict__.setdefault("_typed", {})  # frozen: cached beside the fields
        found = cache.get((topic, id(serde)))
        if found is None:
            found = cache[(topic, id(serde))] = ConfluentSerde(serde, self.registry_client, subject_for(topic))
        return found

    def for_schema(self, topic: str, schema_json: dict[str, Any]) -> RecordSerde[dict[str, Any]]:
        """A serde of records (dicts) of a declared schema on ``topic``, in this wire format; built once.

        With a registry the schema is registered under ``<topic>-value`` on first write.
        """
        cache = self.__dict__.setdefault("_declared", {})  # frozen: cached beside the fields
        # the whole text, not the fingerprint: defaults and aliases change reading, not the fingerprint
        text = json.dumps(schema_json, sort_keys=True)
        serde = cache.get((topic, text))
        if serde is None:
            plain: AvroSerde[dict[str, Any]] = AvroSerde(schema_json, None)
            if self.registry_client is None:
                serde = plain
            else:
                from edml.schemas.confluent import ConfluentSerde, subject_for

                serde = ConfluentSerde(plain, self.registry_client, subject_for(topic))
            cache[(topic, text)] = serde
        return serde

    def for_topic(self, topic: str) -> RecordSerde[Any]:
        """The serde of the topic named ``topic`` (a name from the settings' ``Topics`` holding an edml record)."""
        by_name = self.__dict__.get("_by_name")
        if by_name is None:  # frozen: cached beside the fields, built on first use
            # roles of edml's own records; a pipeline's declared records come from for_schema
            by_name = {name: getattr(self, role) for role, name in self.topics.names().items() if role in RECORDS}
            object.__setattr__(self, "_by_name", by_name)
        try:
            return by_name[topic]
        except KeyError:
            raise KeyError(f"{topic!r} is none of edml's topics") from None


def topic_serdes(settings: Settings) -> TopicSerdes:
    """The serdes of ``settings``: Confluent wire format with a registry URL, else single-object; built once."""
    return _topic_serdes(settings.schema_registry, settings.topics)


@cache
def _topic_serdes(registry: SchemaRegistrySettings, topics: Topics) -> TopicSerdes:
    names = topics.names()
    if not registry.url:
        by_role: dict[str, Any] = {role: serde_for(record) for role, record in RECORDS.items()}
        return TopicSerdes(**by_role, topics=topics)
    from edml.schemas.confluent import ConfluentSerde, make_client, subject_for

    client = make_client(registry)  # one client (one cache of ids and schemas) for every topic
    by_role = {role: ConfluentSerde(serde_for(record), client, subject_for(names[role]))
               for role, record in RECORDS.items()}
    return TopicSerdes(**by_role, topics=topics, registry_url=registry.url, registry_client=client)


def single_object_serdes(topics: Topics | None = None) -> TopicSerdes:
    """The default serdes (single-object encoding), for code and tests that have no settings."""
    from edml.core.config import SchemaRegistrySettings, Topics

    return _topic_serdes(SchemaRegistrySettings(), topics or Topics())


class EitherWireFormat(Generic[T]):
    """Reads a record in either wire format, told apart by the first byte; writes single-object.

    For bytes kept from another time, such as a replay archive: its trips were recorded in the
    format the cluster used then. Confluent-framed values need a registry (``confluent``).
    """

    def __init__(self, single: AvroSerde[T], confluent: RecordSerde[T] | None) -> None:
        self.single = single
        self.confluent = confluent
        self.record_type = single.record_type
        self.schema_json = single.schema_json
        self.fingerprint = single.fingerprint

    def encode(self, record: T) -> bytes:
        """Single-object encoding of ``record``."""
        return self.single.encode(record)

    def encode_columns(self, columns: dict[str, Any], n: int) -> list[bytes]:
        """Single-object encodings of ``n`` records given by column."""
        return self.single.encode_columns(columns, n)

    def own_header(self) -> bytes | None:
        """The Confluent header once its schema id is known (a registry archive), else single-object's."""
        return (self.confluent.own_header() if self.confluent is not None else None) or self.single.own_header()

    def decode(self, payload: bytes | None) -> T:
        """The record in ``payload``, whichever format; raises ``DecodeError`` only."""
        if payload is not None and payload[:1] == CONFLUENT_MAGIC:
            if self.confluent is None:
                raise DecodeError("bad-magic", "a Confluent-framed value (schema registry format): set "
                                               "[schema_registry] url to read it")
            return self.confluent.decode(payload)
        return self.single.decode(payload)


def archive_serdes(settings: Settings, declared: dict[str, dict[str, Any] | None] | None = None) -> TopicSerdes:
    """Serdes for replaying a pipeline's archive: its events and labels in either format, outputs single-object.

    Replay writes files, not topics; its outputs use the settings' topic names (a pipeline's, after
    ``pipeline_settings``) in single-object encoding. ``declared`` maps topics to their declared
    schemas (a pipeline's input and label topics): ``for_schema`` of those reads either wire format.
    """
    recorded = topic_serdes(settings) if settings.schema_registry_url else None
    serdes = dataclasses.replace(single_object_serdes(settings.topics))  # a copy: its caches are its own
    for topic, schema in (declared or {}).items():
        if schema is not None:
            # for_schema caches what it builds: the entry it made is replaced by one reading either format
            single = cast(AvroSerde[dict[str, Any]], serdes.for_schema(topic, schema))  # single-object serdes
            cache = serdes.__dict__["_declared"]
            key = next(k for k, v in cache.items() if v is single)
            cache[key] = EitherWireFormat(single, recorded.for_schema(topic, schema) if recorded else None)
    return serdes


def with_registry(settings: Settings, url: str) -> Settings:
    """``settings`` with the schema registry at ``url`` (other registry settings kept)."""
    return dataclasses.replace(settings, schema_registry=dataclasses.replace(settings.schema_registry, url=url))
