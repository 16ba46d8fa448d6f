"""The format switch: which wire format a topic's values use.

With ``settings.schema_registry_url`` set, values are in the Confluent wire format with the
schema registered under ``<topic>-value``; without it, Avro single-object encoding. Both serdes
expose the same ``encode(record) -> bytes`` and ``decode(bytes) -> record`` (raising only
``DecodeError``), so producers and dataflows do not care which one they hold.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from edml.schemas.registry import ConfluentAvroSerde, SchemaRegistryClient, subject_for
from edml.schemas.serde import serde_for

if TYPE_CHECKING:
    from edml.core.config import Settings

T = TypeVar("T")


class RecordSerde(Protocol[T]):
    """What every serde offers, whatever its wire format."""

    def encode(self, record: T) -> bytes:
        """The record as a message value."""
        ...

    def decode(self, payload: bytes | None) -> T:
        """The record in a message value; raises ``schemas.serde.DecodeError`` only."""
        ...


@cache
def registry_client(url: str) -> SchemaRegistryClient:
    """One client (and so one cache of ids and schemas) per registry URL in this process."""
    return SchemaRegistryClient(url)


@cache
def _confluent_serde(url: str, record_name: str, topic: str) -> ConfluentAvroSerde[Any]:
    return ConfluentAvroSerde(serde_for(record_name), registry_client(url), subject_for(topic))


def serde_for_topic(settings: Settings, record_name: str, topic: str) -> RecordSerde[Any]:
    """The serde of ``record_name`` (e.g. ``"TripPickup"``) values on ``topic``, built once.

    Confluent wire format when ``settings.schema_registry_url`` is set, else single-object.
    """
    if settings.schema_registry_url:
        return _confluent_serde(settings.schema_registry_url, record_name, topic)
    return serde_for(record_name)
