"""A message Kafka refuses as too large becomes a dead letter that keeps its origin and a bounded part."""

from __future__ import annotations

from edml.schemas.oversized import KEPT_BYTES, too_large_dead_letters
from edml.schemas.records import DeadLetter
from edml.schemas.serde import dead_letter_serde

from edml.kafka.messages import OutgoingMessage

REASON = "Broker: Message size too large"


def test_a_too_large_prediction_becomes_a_dead_letter_naming_its_topic_and_size() -> None:
    replace = too_large_dead_letters("dead-letters")
    out = replace(OutgoingMessage("predictions", b"k" * (KEPT_BYTES + 10), b"v" * 2_000_000), REASON)
    letter = dead_letter_serde().decode(out.value)
    assert out.topic == "dead-letters" and out.key == b"k" * KEPT_BYTES
    assert (letter.source_topic, letter.error_kind, letter.value) == ("predictions", "output-too-large", None)
    assert f"a {KEPT_BYTES + 10 + 2_000_000}-byte message for predictions was not produced: {REASON}" \
        == letter.message


def test_a_too_large_dead_letter_keeps_its_origin_with_a_truncated_value() -> None:
    serde = dead_letter_serde()
    original = DeadLetter(source_topic="trips", partition=3, offset=42, key=b"trip-1", value=b"x" * 3_000_000,
                          error_kind="bad-magic", message="not an Avro trip", time=1)
    out = too_large_dead_letters("dead-letters")(OutgoingMessage("dead-letters", b"trip-1", serde.encode(original)),
                                                 REASON)
    letter = serde.decode(out.value)
    assert (letter.source_topic, letter.partition, letter.offset, letter.error_kind) == ("trips", 3, 42, "bad-magic")
    assert letter.value == b"x" * KEPT_BYTES
    assert letter.message.startswith(f"not an Avro trip [value truncated to {KEPT_BYTES} bytes of 3000000")
