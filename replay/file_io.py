"""The replay's source and sink: an archive in, prediction files out.

* :class:`ArchiveSource` -- a Bytewax source over one role of an archive (the trips), one
  Bytewax partition per archived Kafka partition, each emitting lists of ``SourceMessage`` of
  ``batch_size`` in offset order: the same items the live Kafka source emits.
* :class:`PredictionFileSink` -- takes the scoring dataflow's outgoing messages and, when the
  dataflow ends, writes ``predictions.csv`` (sorted by trip id, then role and version) and
  ``dead_letters.jsonl`` (sorted by source position), staged, then published by the caller.
  Sorting makes the files independent of how partitions interleaved.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from edml.replay.archive import ArchiveError, ArchiveReader
from edml.schemas.records import DeadLetter, Prediction
from edml.schemas.serde import dead_letter_serde, prediction_serde

from edml.core.config import Topics
from edml.core.errors import OperatorError
from edml.kafka.messages import OutgoingMessage, SourceMessage

PREDICTIONS_FILE = "predictions.csv"
DEAD_LETTERS_FILE = "dead_letters.jsonl"
PREDICTION_COLUMNS = ("trip_id", "model_name", "model_version", "role", "event_time", "scored_at", "latency_ms",
                      "predicted_duration_s")
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

    def __init__(self, archive: ArchiveReader, role: str = "trips", batch_size: int = DEFAULT_BATCH_SIZE,
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
    predictions: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    closed: bool = False

    @staticmethod
    def staged(path: Path) -> Path:
        """Where the sink writes ``path`` before it is published."""
        return path.with_name(f".{path.name}.staged")

    def publish(self) -> None:
        """Move the staged files into place (each rename is atomic)."""
        for path in (self.predictions_path, self.dead_letters_path):
            os.replace(self.staged(path), path)

    def discard(self) -> None:
        """Remove the staged files."""
        for path in (self.predictions_path, self.dead_letters_path):
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


def _prediction_key(p: Prediction) -> tuple:
    # trip first; the champion before challengers; every field after that so ties order too
    return (p.trip_id, p.role != "champion", p.role, p.model_version, p.model_name, p.event_time, p.scored_at,
            p.latency_ms, p.predicted_duration_s)


def predictions_csv(predictions: list[Prediction]) -> bytes:
    """The CSV bytes of ``predictions`` in file order (sorted); floats written in shortest round-trip form."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(PREDICTION_COLUMNS)
    for p in sorted(predictions, key=_prediction_key):
        out.writerow((p.trip_id, p.model_name, p.model_version, p.role, p.event_time, p.scored_at,
                      repr(float(p.latency_ms)), repr(float(p.predicted_duration_s))))
    return buf.getvalue().encode()


def read_predictions(path: Path | str) -> list[Prediction]:
    """The predictions of a ``predictions.csv`` written by a replay."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise PredictionFileError(f"cannot read predictions file {path}: {e.strerror or e}") from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or tuple(header) != PREDICTION_COLUMNS:
        raise PredictionFileError(f"{path}: not a replay predictions file "
                                  f"(header must be {','.join(PREDICTION_COLUMNS)})")
    out = []
    for line, row in enumerate(rows, start=2):
        try:
            trip_id, name, version, role, event_time, scored_at, latency, predicted = row
            out.append(Prediction(trip_id=trip_id, predicted_duration_s=float(predicted), model_name=name,
                                  model_version=version, event_time=int(event_time), scored_at=int(scored_at),
                                  latency_ms=float(latency), role=role))
        except ValueError as e:
            raise PredictionFileError(f"{path}:{line}: malformed row {row!r}: {e}") from None
    return out


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
    def __init__(self, topics: Topics, output: ReplayOutput) -> None:
        self._prediction_topics = {topics.predictions, topics.shadow_predictions}
        self._dead_letter_topic = topics.dead_letter
        self._output = output
        self._predictions: list[Prediction] = []
        self._predictions_serde = prediction_serde()
        self._dead_letter_serde = dead_letter_serde()

    def write_batch(self, items: list[list[OutgoingMessage]]) -> None:
        decode_prediction = self._predictions_serde.decode
        for messages in items:
            for m in messages:
                if m.topic in self._prediction_topics:
                    self._predictions.append(decode_prediction(m.value))
                elif m.topic == self._dead_letter_topic:
                    self._output.dead_letters.append(self._dead_letter_serde.decode(m.value))
                else:
                    raise ValueError(f"the scoring dataflow emitted a message for unexpected topic {m.topic!r}")

    def close(self) -> None:
        out = self._output
        _atomic_write(out.staged(out.predictions_path), predictions_csv(self._predictions))
        _atomic_write(out.staged(out.dead_letters_path), dead_letters_jsonl(out.dead_letters))
        self._output.predictions = len(self._predictions)
        self._output.closed = True


class PredictionFileSink(DynamicSink[list[OutgoingMessage]]):
    """Writes the scoring dataflow's output into ``out_dir`` when the dataflow ends (one worker).

    ``output`` tells the caller what was written.
    """

    def __init__(self, out_dir: Path | str, topics: Topics) -> None:
        out_dir = Path(out_dir)
        self.topics = topics
        self.output = ReplayOutput(out_dir / PREDICTIONS_FILE, out_dir / DEAD_LETTERS_FILE)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FilePartition:
        """The file writer; a replay runs on one worker so that it writes one sorted file."""
        if worker_count != 1:
            raise ValueError(f"a replay writes one predictions file: run it on 1 worker, not {worker_count}")
        return _FilePartition(self.topics, self.output)
