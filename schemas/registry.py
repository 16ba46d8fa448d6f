"""Confluent Schema Registry client and the Confluent wire format.

The client speaks the subset of the Confluent Schema Registry REST API (v1) that a producer
and a consumer need, so it works against Confluent's registry, Confluent Cloud, Redpanda's,
Karapace and Apicurio's Confluent-compatible API:

* ``POST /subjects/{subject}/versions`` with ``{"schema": "<avsc>"}`` -> ``{"id": N}``
  (register, or look up the id of an already registered schema);
* ``GET /schemas/ids/{id}`` -> ``{"schema": "<avsc>"}`` (a writer schema by its global id).

Both answers are cached for the life of the client: an id names one schema for ever.

The Confluent wire format of a value is ``00`` + the schema id (4 bytes, big endian) + the
Avro binary body; the subject is ``<topic>-value`` (Confluent's TopicNameStrategy).
Credentials, when the registry needs them, go in the URL: ``https://KEY:SECRET@host``.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Generic, TypeVar

from edml.schemas.serde import CONFLUENT_MAGIC, AvroSerde, DecodeError, parse_writer_schema, schema_fingerprint

from edml.core.errors import OperatorError

T = TypeVar("T")

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
CONFLUENT_HEADER_LEN = 5
# Error codes of the Confluent REST API that mean "no such schema/subject".
NOT_FOUND_CODES = {40401, 40402, 40403}


class SchemaRegistryError(OperatorError):
    """The schema registry refused a request; the message carries its status and reason."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class RegistryUnavailable(SchemaRegistryError):
    """The schema registry cannot be reached or answers with a server error."""


class SchemaNotFound(SchemaRegistryError):
    """The registry has no schema with the requested id."""


def subject_for(topic: str) -> str:
    """The value subject of ``topic`` under Confluent's TopicNameStrategy."""
    return f"{topic}-value"


class SchemaRegistryClient:
    """A small, caching client of the Confluent Schema Registry REST API (see module docstring)."""

    def __init__(self, url: str, timeout_s: float = 5.0, retry_after_s: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SchemaRegistryError(f"schema registry URL {url!r} is not an http(s)://host[:port] URL")
        self._auth: str | None = None
        if parts.username is not None:
            user_info = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(user_info.encode()).decode()
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}
        self._down_until = 0.0
        self._lock = threading.Lock()

    def register(self, subject: str, schema_json: dict[str, Any]) -> int:
        """The id of ``schema_json`` under ``subject``, registering it if the registry lacks it."""
        text = json.dumps(schema_json, separators=(",", ":"))
        key = (subject, text)
        if key not in self._ids:
            quoted = urllib.parse.quote(subject, safe="")
            answer = self._request("POST", f"/subjects/{quoted}/versions", {"schema": text})
            schema_id = answer.get("id")
            if not isinstance(schema_id, int):
                raise SchemaRegistryError(f"{self.url}: registering under {subject!r} gave no id: {answer}")
            self._ids[key] = schema_id
            self._schemas.setdefault(schema_id, schema_json)
        return self._ids[key]

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """The Avro schema registered with global id ``schema_id``.

        Raises :class:`SchemaNotFound`, :class:`RegistryUnavailable` or :class:`SchemaRegistryError`.
        """
        if schema_id not in self._schemas:
            answer = self._request("GET", f"/schemas/ids/{schema_id}")
            kind = answer.get("schemaType", "AVRO")
            if kind != "AVRO":
                raise SchemaRegistryError(f"{self.url}: schema {schema_id} is {kind}, not AVRO")
            try:
                schema = json.loads(answer["schema"])
            except (KeyError, TypeError, ValueError) as e:
                raise SchemaRegistryError(f"{self.url}: schema {schema_id} is not Avro JSON: {e}") from None
            self._schemas[schema_id] = schema
        return self._schemas[schema_id]

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        # After a failure, fail fast for a while: a consumer decoding a batch must not wait for
        # one connection timeout per message while the registry is down.
        with self._lock:
            if time.monotonic() < self._down_until:
                raise RegistryUnavailable(f"schema registry {self.url} is unavailable (retrying shortly)")
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE}
            | ({"Authorization": self._auth} if self._auth else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            raise self._http_error(method, path, e) from None
        except (urllib.error.URLError, OSError) as e:  # refused, DNS, timeout, reset
            reason = getattr(e, "reason", e)
            self._mark_down()
            raise RegistryUnavailable(f"schema registry {self.url} is unreachable: {reason}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise SchemaRegistryError(f"{self.url}{path}: the answer is not JSON: {raw[:80]!r}") from None
        if not isinstance(answer, dict):
            raise SchemaRegistryError(f"{self.url}{path}: unexpected answer {answer!r}")
        return answer

    def _mark_down(self) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.retry_after_s

    def _http_error(self, method: str, path: str, e: urllib.error.HTTPError) -> SchemaRegistryError:
        try:
            detail = json.loads(e.read())
            error_code, message = detail.get("error_code"), detail.get("message", "")
        except (ValueError, AttributeError, OSError):
            error_code, message = None, e.reason
        text = f"schema registry {method} {self.url}{path}: HTTP {e.code} {message}".rstrip()
        if e.code >= 500:
            self._mark_down()
            return RegistryUnavailable(text, e.code, error_code)
        if e.code == 404 and (error_code in NOT_FOUND_CODES or error_code is None):
            return SchemaNotFound(text, e.code, error_code)
        return SchemaRegistryError(text, e.code, error_code)


class ConfluentAvroSerde(Generic[T]):
    """An :class:`AvroSerde` in the Confluent wire format, schemas by id from a registry.

    ``encode`` registers the serde's schema under ``subject`` once and prefixes its id;
    ``decode`` reads any schema id the registry knows, resolving that writer schema to the
    serde's own, and raises only :class:`DecodeError` (kinds as :class:`AvroSerde` plus
    ``unknown-schema-id`` and ``registry-unavailable``).
    """

    def __init__(self, serde: AvroSerde[T], registry: SchemaRegistryClient, subject: str) -> None:
        self.serde = serde
        self.registry = registry
        self.subject = subject
        self._schema_id: int | None = None
        self._writers: dict[int, Any | None] = {}  # id -> parsed writer schema; None: the serde's own

    @property
    def schema_id(self) -> int:
        """The registry id of this serde's schema (registered on first use)."""
        if self._schema_id is None:
            self._schema_id = self.registry.register(self.subject, self.serde.schema_json)
            self._writers[self._schema_id] = None
        return self._schema_id

    def encode(self, record: T) -> bytes:
        """``00`` + schema id (big endian) + the Avro body; raises :class:`SchemaRegistryError`."""
        buf = io.BytesIO()
        buf.write(CONFLUENT_MAGIC + struct.pack(">I", self.schema_id))
        buf.write(self.serde.encode_body(record))
        return buf.getvalue()

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
        try:
            schema_json = self.registry.schema_by_id(schema_id)
        except SchemaNotFound as e:
            raise DecodeError("unknown-schema-id", f"schema id {schema_id}: {e}") from None
        except RegistryUnavailable as e:
            raise DecodeError("registry-unavailable", f"schema id {schema_id}: {e}") from None
        except SchemaRegistryError as e:
            raise DecodeError("schema-mismatch", f"schema id {schema_id}: {e}") from None
        try:
            same = schema_fingerprint(schema_json) == self.serde.fingerprint
            writer = None if same else parse_writer_schema(schema_json)
        except Exception as e:  # a registered schema fastavro cannot parse is data, not a crash
            raise DecodeError("schema-mismatch", f"schema id {schema_id} does not parse: {e}") from None
        self._writers[schema_id] = writer
        return writer
