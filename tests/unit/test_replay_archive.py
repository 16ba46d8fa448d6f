"""The replay archive: round trip, rolling, resuming, and clear errors for damaged archives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edml.replay.archive import INDEX_NAME, ArchiveError, ArchiveReader, ArchiveWriter, read_segment
from edml.replay.recorder import write_archive
from edml.trainer.recording import generated_messages
from edml.trainer.records import trip_serde

from edml.kafka.messages import SourceMessage


def messages(topic: str, partition: int, start: int, n: int, size: int = 40) -> list[SourceMessage]:
    return [SourceMessage(topic, partition, o, f"k{o}".encode(), bytes([o % 251]) * size, 1_700_000_000_000 + o)
            for o in range(start, start + n)]


def as_tuples(msgs: list[SourceMessage]) -> list[tuple]:
    return [(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp_ms) for m in msgs]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_round_trip_keeps_key_value_partition_offset_timestamp(tmp_path: Path) -> None:
    p0, p1 = messages("t-trips", 0, 0, 50), messages("t-trips", 1, 10, 30)
    p1[3] = SourceMessage("t-trips", 1, 13, None, None, 5)  # a null key and a tombstone survive
    with ArchiveWriter(tmp_path / "a") as w:
        assert w.append("trips", p0[:20] + p1) == 50
        w.append("trips", p0[20:])
        w.append("dropoffs", messages("t-dropoffs", 0, 0, 7))
    reader = ArchiveReader(tmp_path / "a")
    assert reader.roles() == ["dropoffs", "trips"]
    assert reader.partitions("trips") == [0, 1]
    assert reader.count("trips") == 80 and reader.count("dropoffs") == 7
    assert reader.topic("trips") == "t-trips"
    assert as_tuples(list(reader.messages("trips", 0))) == as_tuples(p0)
    assert as_tuples(list(reader.messages("trips", 1))) == as_tuples(p1)
    assert as_tuples(list(reader.messages("trips"))) == as_tuples(p0 + p1)


def test_segments_roll_by_size_and_stay_in_offset_order(tmp_path: Path) -> None:
    sent = messages("trips", 0, 0, 400, size=200)
    with ArchiveWriter(tmp_path / "a", max_segment_bytes=8_000, codec="null") as w:
        for i in range(0, 400, 25):
            w.append("trips", sent[i:i + 25])
    reader = ArchiveReader(tmp_path / "a")
    segments = reader.segments_of("trips", 0)
    print(f"[roll by size] {len(segments)} segments: {[s.records for s in segments]}")
    assert len(segments) >= 5
    assert all(s.bytes >= 8_000 for s in segments[:-1])
    assert [s.sequence for s in segments] == list(range(len(segments)))
    assert [s.first_offset for s in segments[1:]] == [s.last_offset + 1 for s in segments[:-1]]
    assert as_tuples(list(reader.messages("trips"))) == as_tuples(sent)


def test_segments_roll_by_age(tmp_path: Path) -> None:
    clock = FakeClock()
    w = ArchiveWriter(tmp_path / "a", max_segment_age_s=60, clock=clock)
    w.append("trips", messages("trips", 0, 0, 10))
    clock.now = 30
    w.append("trips", messages("trips", 0, 10, 10))
    assert w.roll_due() == []
    assert not (tmp_path / "a" / "trips" / "p0" / "000000.avro").exists(), "still being written"
    clock.now = 61
    rolled = w.roll_due()
    assert [(s.records, s.first_offset, s.last_offset) for s in rolled] == [(20, 0, 19)]
    assert (tmp_path / "a" / "trips" / "p0" / "000000.avro").exists()
    w.append("trips", messages("trips", 0, 20, 5))
    w.close()
    assert [s.records for s in ArchiveReader(tmp_path / "a").segments_of("trips")] == [20, 5]


def test_resume_skips_messages_already_archived(tmp_path: Path) -> None:
    with ArchiveWriter(tmp_path / "a") as w:
        w.append("trips", messages("trips", 0, 0, 10) + messages("trips", 1, 0, 4))
    w2 = ArchiveWriter(tmp_path / "a")
    assert w2.next_offsets() == {("trips", 0): 10, ("trips", 1): 4}
    # a consumer re-reading from an earlier offset: only the new messages are kept
    assert w2.append("trips", messages("trips", 0, 5, 10)) == 5
    w2.close()
    reader = ArchiveReader(tmp_path / "a")
    assert [m.offset for m in reader.messages("trips", 0)] == list(range(15))
    assert [s.sequence for s in reader.segments_of("trips", 0)] == [0, 1]


def test_a_role_keeps_its_topic(tmp_path: Path) -> None:
    with ArchiveWriter(tmp_path / "a") as w:
        w.append("trips", messages("trips-a", 0, 0, 3))
        with pytest.raises(ArchiveError, match="from topic 'trips-a', not 'trips-b'"):
            w.append("trips", messages("trips-b", 0, 3, 3))


def _one_segment_archive(tmp_path: Path, n: int = 600) -> tuple[Path, Path]:
    root = tmp_path / "a"
    with ArchiveWriter(root) as w:
        for i in range(0, n, 100):  # one Avro block per append
            w.append("trips", messages("trips", 0, i, 100))
    return root, root / "trips" / "p0" / "000000.avro"


def test_truncated_segment_names_the_file_and_the_byte_position(tmp_path: Path) -> None:
    root, segment = _one_segment_archive(tmp_path)
    data = segment.read_bytes()
    cut = len(data) * 2 // 3
    segment.write_bytes(data[:cut])
    with pytest.raises(ArchiveError) as e:
        ArchiveReader(root)
    message = str(e.value)
    print(f"[truncated] {message}")
    assert str(segment) in message
    assert f"truncated at byte {cut}" in message and f"the index says {len(data)} bytes" in message
    assert "records are readable, the damage starts at byte" in message


def test_truncation_at_a_block_boundary_is_caught_by_the_index(tmp_path: Path) -> None:
    root, segment = _one_segment_archive(tmp_path)
    # find the end of the third block: a file cut there is a valid Avro file on its own
    sync = segment.read_bytes()[-16:]
    data = segment.read_bytes()
    ends = [i + 16 for i in range(len(data)) if data[i:i + 16] == sync][1:]  # the first is in the header
    segment.write_bytes(data[:ends[2]])
    assert sum(1 for _ in read_segment(segment)) == 300, "valid on its own"
    with pytest.raises(ArchiveError, match=rf"{segment}: truncated at byte {ends[2]} .* the first 300 of its 600"):
        ArchiveReader(root)


def test_a_corrupt_block_names_the_file_and_position_while_reading(tmp_path: Path) -> None:
    root, segment = _one_segment_archive(tmp_path)
    data = bytearray(segment.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 40] = b"\xff" * 40  # same size, damaged content
    segment.write_bytes(bytes(data))
    reader = ArchiveReader(root)  # sizes match the index
    with pytest.raises(ArchiveError) as e:
        list(reader.messages("trips"))
    print(f"[corrupt] {e.value}")
    assert str(segment) in str(e.value) and "damaged at byte" in str(e.value)


def test_missing_extended_and_foreign_archives_are_clear_errors(tmp_path: Path) -> None:
    root, segment = _one_segment_archive(tmp_path)
    with open(segment, "ab") as f:
        f.write(b"junk")
    with pytest.raises(ArchiveError, match=r"4 unexpected bytes after byte \d+"):
        ArchiveReader(root)
    segment.unlink()
    with pytest.raises(ArchiveError, match=rf"{segment}: segment listed in .*index.json is missing"):
        ArchiveReader(root)
    (root / INDEX_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ArchiveError, match="not a replay archive index"):
        ArchiveReader(root)
    with pytest.raises(ArchiveError, match="does not exist"):
        ArchiveReader(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchiveError, match="is not a replay archive: it has no index.json"):
        ArchiveReader(tmp_path / "empty")


def test_an_unfinished_segment_is_ignored_and_its_messages_recorded_again(tmp_path: Path) -> None:
    root = tmp_path / "a"
    with ArchiveWriter(root) as w:
        w.append("trips", messages("trips", 0, 0, 10))
    crashed = ArchiveWriter(root)
    crashed.append("trips", messages("trips", 0, 10, 10))  # written to 000001.avro.part, never rolled
    assert (root / "trips" / "p0" / "000001.avro.part").exists()
    reader = ArchiveReader(root)
    assert [m.offset for m in reader.messages("trips")] == list(range(10))
    resumed = ArchiveWriter(root)
    assert resumed.next_offsets() == {("trips", 0): 10}
    resumed.append("trips", messages("trips", 0, 10, 10))
    resumed.close()
    segments = ArchiveReader(root).segments_of("trips")
    assert [(s.sequence, s.first_offset) for s in segments] == [(0, 0), (2, 10)], "a new sequence number"
    assert [m.offset for m in ArchiveReader(root).messages("trips")] == list(range(20))


def write_generated(root: Path, n: int, seed: int, partitions: int = 2) -> None:
    write_archive(root, generated_messages(n, seed, partitions=partitions))


def test_generated_archives_are_reproducible(tmp_path: Path) -> None:
    write_generated(tmp_path / "a", 200, seed=3, partitions=3)
    write_generated(tmp_path / "b", 200, seed=3, partitions=3)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 7  # index + 3 partitions x (events, labels)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    reader = ArchiveReader(tmp_path / "a")
    assert reader.roles() == ["events", "labels"]
    assert reader.count("events") == reader.count("labels") == 200
    for p in reader.partitions("labels"):
        stamps = [m.timestamp_ms for m in reader.messages("labels", p)]
        assert stamps == sorted(stamps), "labels arrive in the order they became known"
    with pytest.raises(ArchiveError, match="not empty"):
        write_generated(tmp_path / "a", 10, seed=1)


def test_an_archive_with_older_role_names_is_read_and_resumed_by_topic(tmp_path: Path) -> None:
    root = tmp_path / "old"
    with ArchiveWriter(root) as w:  # as recorders wrote archives before roles were events and labels
        w.append("trips", messages("in-topic", 0, 0, 10))
        w.append("truths", messages("label-topic", 0, 0, 4))
    reader = ArchiveReader(root)
    assert reader.role_for("events", "in-topic") == "trips"
    assert reader.role_for("labels", "label-topic") == "truths"
    assert reader.role_for("labels", "elsewhere") is None
    # a recorder resuming it keeps each topic under the role the archive holds it as
    with ArchiveWriter(root) as w:
        assert w.role_of_topic("in-topic") == "trips" and w.role_of_topic("other") is None
        assert w.append(w.role_of_topic("in-topic") or "events", messages("in-topic", 0, 5, 10)) == 5
    assert [m.offset for m in ArchiveReader(root).messages("trips")] == list(range(15))
    assert ArchiveReader(root).roles() == ["trips", "truths"]


def test_replay_serdes_read_a_pipelines_events_in_either_wire_format() -> None:
    from edml.replay.run import replay_serdes
    from edml.schemas.serde import DecodeError
    from edml.trainer.generator import generate_trips

    from edml.core.config import Settings
    from edml.pipelines.bound import open_pipeline

    bound = open_pipeline("taxi", Settings())
    serdes = replay_serdes(Settings(), bound)
    events = serdes.for_schema(serdes.topics.trips, bound.schema)
    trip = generate_trips(1, seed=5)[0].pickup
    single = trip_serde().encode(trip)
    assert events.decode(single)["trip_id"] == trip.trip_id
    # recorded in registry mode, read without one: a one-line reason, not a crash
    with pytest.raises(DecodeError, match=r"Confluent-framed value .*set \[schema_registry\] url"):
        events.decode(b"\x00\x00\x00\x00\x07" + single[10:])
    assert serdes.for_schema(serdes.topics.labels, bound.label_schema) is not events
