"""The replay's source and sink: an archive in, prediction files out.

* :class:`ArchiveSource` -- a Bytewax source over one role of an archive (the events), one
  Bytewax partition per archived Kafka partition, each emitting lists of ``SourceMessage`` of
  ``batch_size`` in offset order: the same items the live Kafka source emits.
* :class:`PredictionFileSink` -- takes the scoring dataflow's outgoing messages and, when the
  dataflow ends, writes ``predictions.csv`` (sorted by the pipeline's key, then role and version)
  and ``dead_letters.jsonl`` (sorted by source position), and ``alerts.csv`` (the predictions an
  alert rule fired on, with the rule), staged, then published by the caller.
  Sorting makes the files independent of how partitions interleaved.

``predictions.csv`` has one column per field of the pipeline's prediction records: the key first,
then the lineage (:data:`LINEAGE_COLUMNS`), then every model output (the union over the versions
replayed; a cell is empty where a version has no such output). Floats are written in shortest
round-trip form, booleans as ``true``/``false``, vectors as JSON lists.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from edml.replay.archive import EVENTS, ArchiveError, ArchiveReader
from edml.schemas.records import DeadLetter
from edml.schemas.serde import SINGLE_OBJECT_MAGIC, AvroSerde, DecodeError, dead_letter_serde

from edml.core.config import Topics
from edml.core.errors import OperatorError
from edml.kafka.messages import OutgoingMessage, SourceMessage

PREDICTIONS_FILE = "predictions.csv"
DEAD_LETTERS_FILE = "dead_letters.jsonl"
ALERTS_FILE = "alerts.csv"
# the lineage every prediction carries, after the key column (edml.pipelines.predictions.LINEAGE)
LINEAGE_COLUMNS = ("model_name", "model_version", "role", "event_time", "scored_at", "latency_ms")
_TEXT_COLUMNS = ("model_name", "model_version", "role")
_INT_COLUMNS = ("event_time", "scored_at")
DEFAULT_BATCH_SIZE = 1000


class PredictionFileError(OperatorError):
    """A predictions file that cannot be read; the message names the file and line."""


# --- source -----------------------------------------------------------------------------------


class _ArchivePartition(StatefulSourcePartition[list[SourceMessage], int]):
    def __init__(self, source: ArchiveSource, messages: Iterator[SourceMessage], skip: int) -> None:
        self._source = source
        self._messages = messages
        self._batch_size = source.batch_size
        self._on_batch = source.on_batch
        self._emitted = skip
        self._skip = skip

    def next_batch(self) -> list[list[SourceMessage]]:
        if self._source.error is not None:  # another partition hit damage: the replay is void
            raise StopIteration()
        try:
            if self._skip:
                for _ in islice(self._messages, self._skip):
                    pass
                self._skip = 0
            batch = list(islice(self._messages, self._batch_size))
        except ArchiveError as e:
            # Ending the partition (not raising through Bytewax, which would panic) lets the
            # dataflow stop cleanly; the caller raises the error and discards the output.
            self._source.error = e
            raise StopIteration() from None
        if not batch:
            raise StopIteration()
        self._emitted += len(batch)
        if self._on_batch is not None:
            self._on_batch(len(batch))
        return [batch]

    def snapshot(self) -> int:
        return self._emitted


class ArchiveSource(FixedPartitionedSource[list[SourceMessage], int]):
    """The ``role`` messages of an archive in batches, one Bytewax partition per archived Kafka partition.

    ``on_batch(n)`` is called with the size of every emitted batch (progress reporting). A damaged
    segment ends every partition; ``error`` then holds the ArchiveError for the caller to raise.
    """

    def __init__(self, archive: ArchiveReader, role: str = EVENTS, batch_size: int = DEFAULT_BATCH_SIZE,
                 on_batch: Callable[[int], None] | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.archive, self.role, self.batch_size, self.on_batch = archive, role, batch_size, on_batch
        self.error: ArchiveError | None = None

    def list_parts(self) -> list[str]:
        """One part per archived partition of the role."""
        return [str(p) for p in self.archive.partitions(self.role)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ArchivePartition:
        """Read the partition's segments in order, skipping the messages a resumed run already emitted."""
        return _ArchivePartition(self, self.archive.messages(self.role, int(for_part)), resume_state or 0)


# --- sink -------------------------------------------------------------------------------------


@dataclass
class ReplayOutput:
    """What the sink wrote, filled in when the dataflow ends.

    The sink writes staged files; :meth:`publish` moves them into place once the caller knows
    the whole archive was read, :meth:`discard` removes them: a failed replay leaves no partial file.
    """

    predictions_path: Path
    dead_letters_path: Path
    alerts_path: Path
    predictions: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    alerts: int = 0
    closed: bool = False

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file the sink writes."""
        return (self.predictions_path, self.dead_letters_path, self.alerts_path)

    @staticmethod
    def staged(path: Path) -> Path:
        """Where the sink writes ``path`` before it is published."""
        return path.with_name(f".{path.name}.staged")

    def publish(self) -> None:
        """Move the staged files into place (each rename is atomic)."""
        for path in self.paths:
            os.replace(self.staged(path), path)

    def discard(self) -> None:
        """Remove the staged files."""
        for path in self.paths:
            self.staged(path).unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def output_columns(schemas: Sequence[dict[str, Any]], key: str) -> list[str]:
    """The model-output columns of prediction records with ``schemas``: every field but the key and the
    lineage, in the order of first appearance."""
    taken = {key, *LINEAGE_COLUMNS}
    out: list[str] = []
    for schema in schemas:
        for f in schema.get("fields", []):
            name = str(f["name"])
            if name not in taken and name not in out:
                out.append(name)
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return json.dumps([_plain(v) for v in value])
    return str(value)


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, float) else value


def _parse_cell(text: str) -> Any:
    """A model-output cell back as a value: empty is None, then booleans, JSON lists, numbers, text."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("["):
        return json.loads(text)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _row_order(row: tuple[Any, list[str]]) -> tuple:
    # key first (by value, so numbers sort as numbers); the champion before challengers; then
    # every written cell so ties order too
    key, cells = row
    return (key is None, key, cells[3] != "champion", cells[3], cells[2], cells[1], cells[4:])


def predictions_csv(predictions: Sequence[dict[str, Any]], key: str, outputs: Sequence[str]) -> bytes:
    """The CSV bytes of ``predictions`` (prediction records as dicts) in file order (sorted)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    header = (key, *LINEAGE_COLUMNS, *outputs)
    out.writerow(header)
    rows = []
    for p in predictions:
        cells = [_cell(p[key]), p["model_name"], p["model_version"], p["role"], str(p["event_time"]),
                 str(p["scored_at"]), repr(float(p["latency_ms"])), *(_cell(p.get(o)) for o in outputs)]
        rows.append((p[key], cells))
    for _, cells in sorted(rows, key=_row_order):
        out.writerow(cells)
    return buf.getvalue().encode()


def read_predictions(path: Path | str) -> list[dict[str, Any]]:
    """The predictions of a ``predictions.csv`` written by a replay, as dicts by column.

    The key is kept as written (text); lineage columns have their types; model outputs are read
    back as numbers, booleans, lists or text (None where a version has no such output).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise PredictionFileError(f"cannot read predictions file {path}: {e.strerror or e}") from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or len(header) < 2 + len(LINEAGE_COLUMNS) or tuple(header[1:7]) != LINEAGE_COLUMNS:
        raise PredictionFileError(f"{path}: not a replay predictions file (header must be KEY,"
                                  f"{','.join(LINEAGE_COLUMNS)},OUTPUT...)")
    key, outputs = header[0], header[1 + len(LINEAGE_COLUMNS):]
    out = []
    for line, row in enumerate(rows, start=2):
        try:
            if len(row) != len(header):
                raise ValueError(f"{len(row)} columns, the header has {len(header)}")
            record: dict[str, Any] = {key: row[0]}
            for name, cell in zip(LINEAGE_COLUMNS, row[1:], strict=False):
                record[name] = cell if name in _TEXT_COLUMNS else int(cell) if name in _INT_COLUMNS else float(cell)
            for name, cell in zip(outputs, row[1 + len(LINEAGE_COLUMNS):], strict=True):
                record[name] = _parse_cell(cell)
            out.append(record)
        except ValueError as e:
            raise PredictionFileError(f"{path}:{line}: malformed row {row!r}: {e}") from None
    return out


class PredictionDecoder:
    """Reads prediction messages written in single-object encoding with any of ``schemas``, as dicts."""

    def __init__(self, schemas: Sequence[dict[str, Any]]) -> None:
        self._serdes: dict[bytes, AvroSerde[dict[str, Any]]] = {}
        for schema in schemas:
            serde: AvroSerde[dict[str, Any]] = AvroSerde(schema, None)
            self._serdes.setdefault(serde.fingerprint, serde)

    def decode(self, payload: bytes | None) -> dict[str, Any]:
        """The prediction in ``payload``; DecodeError when no known schema wrote it."""
        if payload is None or payload[:2] != SINGLE_OBJECT_MAGIC:
            raise DecodeError("bad-magic", "a prediction not in single-object encoding")
        serde = self._serdes.get(payload[2:10])
        if serde is None:
            raise DecodeError("unknown-schema", f"a prediction written with schema {payload[2:10].hex()}, "
                                                "none of the replayed models' prediction schemas")
        return serde.decode(payload)


def _dead_letter_json(d: DeadLetter) -> dict:
    # no wall-clock `time`: the file depends on the archive alone
    return {"source_topic": d.source_topic, "partition": d.partition, "offset": d.offset,
            "key": None if d.key is None else d.key.decode("utf-8", "backslashreplace"),
            "value_bytes": None if d.value is None else len(d.value),
            "error_kind": d.error_kind, "message": d.message}


def dead_letters_jsonl(dead_letters: list[DeadLetter]) -> bytes:
    """One JSON object a line, in source order (topic, partition, offset)."""
    ordered = sorted(dead_letters, key=lambda d: (d.source_topic, d.partition, d.offset, d.error_kind, d.message))
    return "".join(json.dumps(_dead_letter_json(d), sort_keys=True) + "\n" for d in ordered).encode()


class _FilePartition(StatelessSinkPartition[list[OutgoingMessage]]):
    def __init__(self, sink: PredictionFileSink) -> None:
        topics = sink.topics
        self._prediction_topics = {topics.predictions, topics.shadow_predictions}
        self._dead_letter_topic = topics.dead_letter
        self._alert_topic = topics.prediction_alerts
        self._sink = sink
        self._output = sink.output
        self._predictions: list[dict[str, Any]] = []
        self._alerts: list[dict[str, Any]] = []
        self._predictions_serde = PredictionDecoder(sink.schemas)
        self._alerts_serde = PredictionDecoder(sink.alert_schemas)
        self._dead_letter_serde = dead_letter_serde()

    def write_batch(self, items: list[list[OutgoingMessage]]) -> None:
        decode_prediction = self._predictions_serde.decode
        for messages in items:
            for m in messages:
                if m.topic in self._prediction_topics:
                    self._predictions.append(decode_prediction(m.value))
                elif m.topic == self._dead_letter_topic:
                    self._output.dead_letters.append(self._dead_letter_serde.decode(m.value))
                elif m.topic == self._alert_topic:
                    self._alerts.append(self._alerts_serde.decode(m.value))
                else:
                    raise ValueError(f"the scoring dataflow emitted a message for unexpected topic {m.topic!r}")

    def close(self) -> None:
        out = self._output
        sink = self._sink
        _atomic_write(out.staged(out.predictions_path),
                      predictions_csv(self._predictions, sink.key, output_columns(sink.schemas, sink.key)))
        _atomic_write(out.staged(out.dead_letters_path), dead_letters_jsonl(out.dead_letters))
        _atomic_write(out.staged(out.alerts_path),
                      predictions_csv(self._alerts, sink.key, [*output_columns(sink.schemas, sink.key), "rule"]))
        self._output.predictions = len(self._predictions)
        self._output.alerts = len(self._alerts)
        self._output.closed = True


class PredictionFileSink(DynamicSink[list[OutgoingMessage]]):
    """Writes the scoring dataflow's output into ``out_dir`` when the dataflow ends (one worker).

    ``schemas`` are the prediction schemas of the models replayed (champion first), ``key`` the
    pipeline's key field; ``output`` tells the caller what was written. The pipeline's alert rules'
    alerts (the champion's predictions a rule fired on, with the rule's name) go to ``alerts.csv``.
    """

    def __init__(self, out_dir: Path | str, topics: Topics, schemas: Sequence[dict[str, Any]], key: str) -> None:
        from edml.pipelines.alerts import alert_schema

        out_dir = Path(out_dir)
        self.topics = topics
        self.schemas = list(schemas)
        self.alert_schemas = [alert_schema(schema) for schema in self.schemas]
        self.key = key
        self.output = ReplayOutput(out_dir / PREDICTIONS_FILE, out_dir / DEAD_LETTERS_FILE, out_dir / ALERTS_FILE)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FilePartition:
        """The file writer; a replay runs on one worker so that it writes one sorted file."""
        if worker_count != 1:
            raise ValueError(f"a replay writes one predictions file: run it on 1 worker, not {worker_count}")
        return _FilePartition(self)
