"""The Confluent wire format with a schema registry: confluent-kafka's client, edml's codec.

A value is ``00`` + the writer schema's registry id (4 bytes, big endian) + the Avro binary
body; a topic's schemas live under the subject ``<topic>-value`` (TopicNameStrategy), so any
Confluent-compatible consumer (Confluent's deserializers, kcat ``-s value=avro``, ksqlDB)
reads edml's topics.

The registry is reached with confluent-kafka's maintained ``SchemaRegistryClient`` (auth,
retries, caching); the bytes are written and read by edml's own codec (``schemas.serde``,
and ``schemas.columnar`` for whole batches), which is byte-compatible with confluent-kafka's
``AvroSerializer`` (tests decode each with the other) and several times faster per record
(``bench/registry_serde.py``). Rejected: the ``AvroSerializer``/``AvroDeserializer`` pair on
the hot path: it builds a dict per record and cannot write a batch column by column.

Failures are sorted by what they mean for the record:

* the registry does not know the id (HTTP 404): the payload is bad data, ``DecodeError``
  ``unknown-schema-id`` (a dead letter with its reason);
* the registry cannot be reached, answers 5xx, or refuses the credentials: nothing is wrong
  with the record, so the call is retried with backoff until the registry answers (the batch
  waits; no event is dead-lettered or lost), with one warning per attempt.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from edml.schemas.columnar import ColumnarWriter, columnar_writer
from edml.schemas.serde import CONFLUENT_MAGIC, AvroSerde, DecodeError, parse_writer_schema, schema_fingerprint

from edml.core.errors import OperatorError

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from edml.core.config import SchemaRegistrySettings

log = logging.getLogger("edml.registry")

T = TypeVar("T")
R = TypeVar("R")

CONFLUENT_HEADER_LEN = 5
GOOGLE_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


class RegistryRefused(OperatorError):
    """The registry refused a schema (e.g. incompatible with the subject's earlier versions)."""


class RegistryUnavailable(Exception):
    """The registry did not answer, answered 5xx, or refused the credentials (worth retrying)."""


def subject_for(topic: str) -> str:
    """The value subject of ``topic`` under Confluent's TopicNameStrategy."""
    return f"{topic}-value"


def client_config(registry: SchemaRegistrySettings) -> dict[str, Any]:
    """The ``SchemaRegistryClient`` configuration for ``registry`` (holds secrets: never log it)."""
    conf: dict[str, Any] = {"url": registry.url, "timeout": registry.timeout_s,
                            # edml retries an unreachable registry itself (see the module docstring)
                            "max.retries": 1, "retries.wait.ms": 200, "retries.max.wait.ms": 1000}
    if registry.ssl_ca_location:
        conf["ssl.ca.location"] = registry.ssl_ca_location
    if registry.basic_auth_user_info:
        conf["basic.auth.user.info"] = registry.basic_auth_user_info
    elif registry.bearer_token:
        conf["bearer.auth.credentials.source"] = "CUSTOM"
        conf["bearer.auth.custom.provider.function"] = _static_bearer
        conf["bearer.auth.custom.provider.config"] = {"token": registry.bearer_token,
                                                     "logical_cluster": registry.bearer_logical_cluster,
                                                     "identity_pool": registry.bearer_identity_pool}
    elif registry.google_auth:
        conf["bearer.auth.credentials.source"] = "CUSTOM"
        conf["bearer.auth.custom.provider.function"] = google_bearer_fields()
        conf["bearer.auth.custom.provider.config"] = {"logical_cluster": registry.bearer_logical_cluster}
    return conf


def _static_bearer(config: dict[str, str]) -> dict[str, str]:
    # confluent-kafka's STATIC_TOKEN source insists on a logical cluster, which only Confluent
    # Cloud has; a custom provider sends it (as target-sr-cluster) only when there is one.
    fields = {"bearer.auth.token": config["token"], "bearer.auth.logical.cluster": config["logical_cluster"]}
    if config.get("identity_pool"):
        fields["bearer.auth.identity.pool.id"] = config["identity_pool"]
    return fields


def google_bearer_fields() -> Callable[[dict[str, str]], dict[str, str]]:
    """A bearer-field provider with a Google OAuth2 access token (Application Default Credentials).

    google-auth refreshes the token when it is about to expire; no key is stored anywhere.
    """
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=GOOGLE_SCOPES)
    lock = threading.Lock()

    def fields(config: dict[str, str]) -> dict[str, str]:
        with lock:
            if not credentials.valid:
                credentials.refresh(google.auth.transport.requests.Request())
            return {"bearer.auth.token": str(credentials.token),
                    "bearer.auth.logical.cluster": config.get("logical_cluster", "")}

    return fields


def make_client(registry: SchemaRegistrySettings) -> SchemaRegistryClient:
    """confluent-kafka's registry client for ``registry``."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    try:
        return SchemaRegistryClient(client_config(registry))
    except (ValueError, TypeError) as e:
        raise OperatorError(f"[schema_registry]: {e}; see README: schema registry") from None


def _status(e: Exception) -> int | None:
    return getattr(e, "http_status_code", None)


def call_registry(what: str, call: Callable[[], R], *, attempts: int | None = None,
                  max_wait_s: float = 10.0) -> R:
    """``call()``, retried with backoff while the registry is unavailable (every attempt when None).

    Returns its result; re-raises a refusal (4xx other than 401/403) as it is. After ``attempts``
    failed tries, raises :class:`RegistryUnavailable`.
    """
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    wait, tried = 0.2, 0
    while True:
        try:
            return call()
        except SchemaRegistryError as e:
            status = _status(e) or 0
            if status not in (401, 403) and status < 500:
                raise
            reason = f"HTTP {status}: {e.error_message}"
        except Exception as e:  # transport errors (refused, DNS, timeout), token errors
            reason = f"{type(e).__name__}: {e}"
        tried += 1
        if attempts is not None and tried >= attempts:
            raise RegistryUnavailable(f"schema registry unavailable while {what}: {reason}")
        log.warning("schema registry unavailable while %s (%s); retrying in %.1fs", what, reason, wait)
        time.sleep(wait)
        wait = min(max_wait_s, wait * 2)


class ConfluentSerde(Generic[T]):
    """An :class:`AvroSerde` in the Confluent wire format, schemas by id from a registry.

    ``encode`` registers the serde's schema under ``subject`` once (a refusal, e.g. an
    incompatible change, raises :class:`RegistryRefused`) and prefixes its id; ``decode`` reads
    any schema id the registry knows, resolving that writer schema to the serde's own, and raises
    only :class:`DecodeError` (kinds as :class:`AvroSerde` plus ``unknown-schema-id``).
    """

    def __init__(self, serde: AvroSerde[T], client: SchemaRegistryClient, subject: str,
                 unavailable_attempts: int | None = None) -> None:
        self.serde = serde
        self.client = client
        self.subject = subject
        self.record_type = serde.record_type
        self.schema_json = serde.schema_json
        self.fingerprint = serde.fingerprint
        self._attempts = unavailable_attempts
        self._schema_id: int | None = None
        self._writers: dict[int, Any | None] = {}  # id -> parsed writer schema; None: the serde's own
        self._columnar: ColumnarWriter | None = None
        self._lock = threading.Lock()

    @property
    def schema_id(self) -> int:
        """The registry id of this serde's schema (registered under the subject on first use)."""
        if self._schema_id is None:
            self._schema_id = self._register()
            self._writers[self._schema_id] = None
        return self._schema_id

    def _register(self) -> int:
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        schema = Schema(json.dumps(self.serde.schema_json), "AVRO")
        try:
            return call_registry(f"registering {self.subject}", lambda: self.client.register_schema(self.subject,
                                                                                                   schema),
                                 attempts=self._attempts)
        except SchemaRegistryError as e:
            raise RegistryRefused(f"the schema registry refused {self.serde.record_name}'s schema under "
                                  f"{self.subject!r}: HTTP {_status(e)} {e.error_message}") from None

    @property
    def header(self) -> bytes:
        """The five bytes before the body of every record this serde writes."""
        return CONFLUENT_MAGIC + struct.pack(">I", self.schema_id)

    def own_header(self) -> bytes | None:
        """:attr:`header` when this serde's schema id is known already (no registry call), else None."""
        return None if self._schema_id is None else self.header

    def encode(self, record: T) -> bytes:
        """``00`` + schema id (big endian) + the Avro body."""
        return self.header + self.serde.encode_body(record)

    def encode_columns(self, columns: dict[str, Any], n: int) -> list[bytes]:
        """Encodings of ``n`` records given by column (see :meth:`AvroSerde.encode_columns`)."""
        if self._columnar is None:
            self._columnar = columnar_writer(self.serde.schema_json, self.header)
        if self._columnar is not None:
            return self._columnar.write(columns, n)
        body = self.serde.encode_columns(columns, n)  # single-object: swap the 10-byte header
        header = self.header
        return [header + b[10:] for b in body]

    def decode(self, payload: bytes | None) -> T:
        """Read a Confluent-framed payload; raises :class:`DecodeError` only."""
        if payload is None:
            raise DecodeError("null-value", "the message has no value")
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise DecodeError("malformed", f"a message value must be bytes, not {type(payload).__name__}")
        payload = bytes(payload)
        if not payload:
            raise DecodeError("empty", "the message value is empty")
        if payload[:1] != CONFLUENT_MAGIC:
            raise DecodeError("bad-magic", f"first byte {payload[:1].hex()} is not the Confluent magic byte 00")
        if len(payload) < CONFLUENT_HEADER_LEN:
            raise DecodeError("truncated", f"{len(payload)} bytes is shorter than the 5-byte Confluent header")
        (schema_id,) = struct.unpack_from(">I", payload, 1)
        return self.serde.decode_body(payload, CONFLUENT_HEADER_LEN, self._writer(schema_id))

    def _writer(self, schema_id: int) -> Any | None:
        if schema_id in self._writers:
            return self._writers[schema_id]
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = call_registry(f"reading schema id {schema_id}", lambda: self.client.get_schema(schema_id),
                                       attempts=self._attempts)
        except SchemaRegistryError as e:
            kind = "unknown-schema-id" if _status(e) == 404 else "schema-mismatch"
            raise DecodeError(kind, f"schema id {schema_id}: the registry answered HTTP {_status(e)} "
                                    f"{e.error_message}") from None
        except RegistryUnavailable as e:  # only with a bounded number of attempts
            raise DecodeError("registry-unavailable", str(e)) from None
        if registered.schema_type not in (None, "AVRO"):
            raise DecodeError("schema-mismatch", f"schema id {schema_id} is {registered.schema_type}, not AVRO")
        try:
            schema_json = json.loads(registered.schema_str or "")
            same = schema_fingerprint(schema_json) == self.serde.fingerprint
            writer = None if same else parse_writer_schema(schema_json)
        except Exception as e:  # a registered schema fastavro cannot parse is data, not a crash
            raise DecodeError("schema-mismatch", f"schema id {schema_id} does not parse: {e}") from None
        with self._lock:
            self._writers[schema_id] = writer
            if same and self._schema_id is None:
                self._schema_id = schema_id  # the columnar reader can now recognise our own records
        return writer
