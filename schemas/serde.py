"""Avro serde for every edml record.

Two wire formats:

* **Avro single-object encoding** (the default): ``C3 01`` + the writer schema's 64-bit
  CRC-64-AVRO fingerprint (little endian) + the Avro binary body. A reader finds the writer
  schema by fingerprint and resolves it to its own schema, so evolved schemas stay readable.
* **Confluent wire format** when a schema registry is configured: ``00`` + a 4-byte schema id
  (big endian) + the Avro binary body (see ``schemas.confluent``; ``schemas.wire`` picks one).

Older versions of a schema live in ``schemas/avro/history/<Name>.v<N>.avsc``; :func:`serde_for`
accepts every one of them as a writer schema, so a reader upgraded to a new schema still reads
what older producers wrote (and a reader that has the newer schema in its history reads newer
producers).

Decoding never raises anything but :class:`DecodeError`, whose ``kind`` is a short machine
word for dead letters: ``null-value``, ``empty``, ``truncated``, ``bad-magic``,
``unknown-fingerprint``, ``bad-utf8``, ``malformed``, ``trailing-bytes``, ``schema-mismatch``
(and, for the Confluent format, ``unknown-schema-id``, ``registry-unavailable``).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import re
import struct
import types
import typing
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import fastavro
import numpy as np
from edml.schemas import records
from edml.schemas.columnar import columnar_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).parent / "avro"
HISTORY_SUBDIR = "history"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER_LEN = 10
CONFLUENT_MAGIC = b"\x00"

T = TypeVar("T")


class DecodeError(ValueError):
    """A payload that cannot be read as the expected record; ``kind`` names why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class SchemaHistoryError(ValueError):
    """A file under ``schemas/avro/history`` that is not an older version of its schema."""


def load_schema_json(name: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The schema ``<schema_dir>/<name>.avsc`` (default ``schemas/avro``) as JSON."""
    return json.loads((schema_dir / f"{name}.avsc").read_text())


def full_name(schema_json: dict[str, Any]) -> str:
    """``namespace.name`` of a named schema (the name alone when it has no namespace)."""
    name = schema_json["name"]
    namespace = schema_json.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def history_schemas(name: str, schema_dir: Path = SCHEMA_DIR) -> list[dict[str, Any]]:
    """Older versions of schema ``name``: ``<schema_dir>/history/<name>.v<N>.avsc``, by N.

    Raises :class:`SchemaHistoryError` when a history file names another record.
    """
    history = schema_dir / HISTORY_SUBDIR
    if not history.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(name)}\.v(\d+)\.avsc$")
    found = sorted(
        (int(m.group(1)), path) for path in history.iterdir() if (m := pattern.match(path.name))
    )
    current = full_name(load_schema_json(name, schema_dir))
    versions = []
    for _, path in found:
        schema = json.loads(path.read_text())
        if full_name(schema) != current:
            raise SchemaHistoryError(f"{path}: record {full_name(schema)!r} is not an older version of {current!r}")
        versions.append(schema)
    return versions


def _strip_logical_types(node: Any) -> Any:
    # edml works with epoch millis and plain strings; the logical types only change how other
    # readers present the values, and they are not part of the parsing canonical form, so the
    # fingerprint is the same with or without them.
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


def parse_writer_schema(schema_json: dict[str, Any]) -> Any:
    """``schema_json`` parsed the way edml reads and writes it (logical types stripped)."""
    return parse_schema(_strip_logical_types(copy.deepcopy(schema_json)))


def schema_fingerprint(schema_json: dict[str, Any]) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of a schema, in single-object byte order."""
    canonical = to_parsing_canonical_form(parse_schema(copy.deepcopy(schema_json)))
    # fastavro's hex string already lists the bytes in little-endian order (as Java does), which
    # is the single-object header's order: reading it as an int and packing it again would swap it.
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def _has_nested_records(schema_json: dict[str, Any]) -> bool:
    """Whether a field holds a record (directly, in an array, map or union)."""

    def walk(node: Any) -> bool:
        if isinstance(node, list):
            return any(walk(n) for n in node)
        if isinstance(node, dict):
            return node.get("type") == "record" or any(walk(node.get(k)) for k in ("type", "items", "values"))
        return False

    return any(walk(f["type"]) for f in schema_json["fields"])


def _converter(hint: Any) -> Callable[[Any], Any] | None:
    """How to turn fastavro's value for a field of type ``hint`` into dataclasses (None: as is)."""
    if dataclasses.is_dataclass(hint):
        return _record_builder(hint)  # type: ignore[arg-type]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin is list and args and (item := _converter(args[0])) is not None:
        return lambda v: [item(x) for x in v]
    if origin is dict and len(args) == 2 and (value := _converter(args[1])) is not None:
        return lambda v: {k: value(x) for k, x in v.items()}
    if origin in (typing.Union, types.UnionType) and len(args) == 1 and (inner := _converter(args[0])):
        return lambda v: None if v is None else inner(v)
    return None


def _record_builder(cls: type) -> Callable[[dict[str, Any]], Any]:
    """Build ``cls`` and its nested dataclasses from the dicts fastavro returns."""
    hints = typing.get_type_hints(cls)
    convert = {f.name: c for f in dataclasses.fields(cls) if (c := _converter(hints[f.name]))}  # type: ignore[arg-type]
    if not convert:
        return lambda d: cls(**d)
    return lambda d: cls(**{k: (convert[k](v) if k in convert else v) for k, v in d.items()})


def _as_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    raise DecodeError("malformed", f"a message value must be bytes, not {type(payload).__name__}")


class AvroSerde(Generic[T]):
    """Reads and writes one record type; knows older writer schemas by fingerprint.

    ``record_type`` is the dataclass records are read into; None reads and writes plain dicts
    (a pipeline's records, whose schema is declared, not written in code).
    """

    def __init__(
        self,
        schema_json: dict[str, Any],
        record_type: type[T] | None,
        writer_schemas: list[dict[str, Any]] | None = None,
    ) -> None:
        self.schema_json = schema_json
        self.record_type: Any = record_type if record_type is not None else dict
        self.record_name = record_type.__name__ if record_type is not None else str(schema_json.get("name", "record"))
        self.schema = parse_writer_schema(schema_json)
        self.fingerprint = schema_fingerprint(schema_json)
        self._header = SINGLE_OBJECT_MAGIC + self.fingerprint
        self._writers: dict[bytes, Any] = {self.fingerprint: self.schema}
        for older in writer_schemas or []:
            self.add_writer_schema(older)
        self._dicts = record_type is None
        self._field_names = ([str(f["name"]) for f in schema_json.get("fields", [])] if record_type is None
                             else [f.name for f in dataclasses.fields(record_type)])  # type: ignore[arg-type]
        self._simple = not _has_nested_records(schema_json)
        self._build: Callable[[dict[str, Any]], T]
        if record_type is None:
            self._build = cast(Callable[[dict[str, Any]], T], dict)
        else:
            self._build = (lambda d: record_type(**d)) if self._simple else _record_builder(record_type)
        self._columnar = columnar_writer(schema_json, self._header)

    def own_header(self) -> bytes:
        """The 10 bytes before the body of every record this serde writes."""
        return self._header

    @property
    def writer_fingerprints(self) -> list[bytes]:
        """Fingerprints of every schema this serde reads (its own first)."""
        return list(self._writers)

    def add_writer_schema(self, schema_json: dict[str, Any]) -> None:
        """Accept payloads written with another (older or newer) version of this schema."""
        fp = schema_fingerprint(schema_json)
        if fp != self.fingerprint:  # our own schema is read without resolution
            self._writers[fp] = parse_writer_schema(schema_json)

    def to_dict(self, record: T) -> dict[str, Any]:
        """The record as the dict fastavro writes."""
        if self._dicts:
            return cast(dict[str, Any], record)
        if self._simple:
            # asdict deep-copies recursively; flat records only need their attributes (10x faster)
            return {name: getattr(record, name) for name in self._field_names}
        return dataclasses.asdict(record)  # type: ignore[call-overload]

    def encode(self, record: T) -> bytes:
        """Single-object encoding of ``record``."""
        buf = io.BytesIO()
        buf.write(self._header)
        fastavro.schemaless_writer(buf, self.schema, self.to_dict(record))
        return buf.getvalue()

    def encode_columns(self, columns: dict[str, Any], n: int) -> list[bytes]:
        """Single-object encodings of ``n`` records given by column; a non-sequence value is every record's.

        Byte-identical to :meth:`encode` of each record; flat schemas are written for the whole
        batch at once (``schemas.columnar``), ~10x faster than record by record.
        """
        if self._columnar is not None:
            return self._columnar.write(columns, n)
        names = self._field_names
        per_record = {k: isinstance(v, list | tuple | np.ndarray) for k, v in columns.items()}
        return [
            self.encode(self._build({k: (columns[k][i] if per_record[k] else columns[k]) for k in names}))
            for i in range(n)
        ]

    def encode_body(self, record: T) -> bytes:
        """The Avro binary body alone (no header), e.g. for the Confluent wire format."""
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.schema, self.to_dict(record))
        return buf.getvalue()

    def decode(self, payload: bytes | None) -> T:
        """Read a single-object encoded payload; raises :class:`DecodeError` only."""
        if payload is None:
            raise DecodeError("null-value", "the message has no value")
        payload = _as_bytes(payload)
        if not payload:
            raise DecodeError("empty", "the message value is empty")
        if len(payload) < SINGLE_OBJECT_HEADER_LEN:
            raise DecodeError("truncated", f"{len(payload)} bytes is shorter than the 10-byte header")
        if payload[:2] != SINGLE_OBJECT_MAGIC:
            raise DecodeError("bad-magic", f"header {payload[:2].hex()} is not Avro single-object c301")
        fp = payload[2:SINGLE_OBJECT_HEADER_LEN]
        writer = self._writers.get(fp)
        if writer is None:
            raise DecodeError(
                "unknown-fingerprint",
                f"no known {self.record_name} schema has fingerprint {fp.hex()}",
            )
        return self.decode_body(payload, SINGLE_OBJECT_HEADER_LEN, None if writer is self.schema else writer)

    def decode_body(self, payload: bytes, start: int, writer: Any | None = None) -> T:
        """Read the Avro body at ``payload[start:]`` written with ``writer`` (default: ours)."""
        buf = io.BytesIO(payload)
        buf.seek(start)
        try:
            data = fastavro.schemaless_reader(
                buf, writer or self.schema, self.schema if writer is not None else None
            )
        except (EOFError, StopIteration, IndexError, struct.error) as e:
            raise DecodeError("truncated", f"body ends early: {e or type(e).__name__}") from None
        except UnicodeDecodeError as e:
            raise DecodeError("bad-utf8", str(e)) from None
        except SchemaResolutionError as e:
            raise DecodeError("schema-mismatch", f"writer schema does not resolve to ours: {e}") from None
        except Exception as e:  # fastavro raises assorted errors on garbage; all are data errors
            raise DecodeError("malformed", f"{type(e).__name__}: {e}") from None
        if buf.tell() != len(payload):
            raise DecodeError("trailing-bytes", f"{len(payload) - buf.tell()} bytes after the record")
        try:
            return self._build(cast(dict[str, Any], data))  # the writer schema is a record
        except (TypeError, KeyError) as e:
            raise DecodeError("schema-mismatch", str(e)) from None


def build_serde(name: str, record_type: type[T] | None = None, schema_dir: Path = SCHEMA_DIR) -> AvroSerde[T]:
    """A serde of schema ``<schema_dir>/<name>.avsc`` that also reads every version in its history.

    ``record_type`` defaults to the dataclass of the same name in :mod:`schemas.records`.
    """
    return AvroSerde(
        load_schema_json(name, schema_dir),
        record_type or getattr(records, name),
        writer_schemas=history_schemas(name, schema_dir),
    )


@cache
def serde_for(name: str) -> AvroSerde[Any]:
    """The serde of edml's record named ``name`` (e.g. ``"Prediction"``), built once."""
    return build_serde(name)


def prediction_serde() -> AvroSerde[records.Prediction]:
    """Serde of Prediction (predictions and shadow-predictions topics)."""
    return serde_for("Prediction")


def model_record_serde() -> AvroSerde[records.ModelRecord]:
    """Serde of ModelRecord (model topic values)."""
    return serde_for("ModelRecord")


def model_status_serde() -> AvroSerde[records.ModelStatus]:
    """Serde of ModelStatus (model-status topic)."""
    return serde_for("ModelStatus")


def dead_letter_serde() -> AvroSerde[records.DeadLetter]:
    """Serde of DeadLetter (dead-letter topic)."""
    return serde_for("DeadLetter")


def encode_model_key(model_name: str) -> bytes:
    """The model topic's key: the model name as UTF-8, so compaction keys on the name alone."""
    return model_name.encode()


def evaluation_serde() -> AvroSerde[records.Evaluation]:
    """Serde of Evaluation (evaluations topic)."""
    return serde_for("Evaluation")


def score_window_serde() -> AvroSerde[records.ScoreWindow]:
    """Serde of ScoreWindow (scores topic)."""
    return serde_for("ScoreWindow")


def drift_alert_serde() -> AvroSerde[records.DriftAlert]:
    """Serde of DriftAlert (alerts topic)."""
    return serde_for("DriftAlert")
