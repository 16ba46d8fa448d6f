"""Dead letters in place of messages Kafka refused as too large (``MSG_SIZE_TOO_LARGE``).

The Kafka sink knows nothing of records: it is handed ``too_large_dead_letters(...)`` and calls
it for each message the broker would not take, so one oversized output neither stops the
dataflow (it would again after a restart) nor is lost without a trace.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from edml.schemas.records import DeadLetter
from edml.schemas.serde import dead_letter_serde
from edml.schemas.wire import RecordSerde

from edml.kafka.messages import OutgoingMessage

log = logging.getLogger("edml.sink")
# What a too-large message keeps of its key and value when it becomes a dead letter
KEPT_BYTES = 64 * 1024
# (message Kafka refused, Kafka's reason) -> the message to produce instead
TooLarge = Callable[[OutgoingMessage, str], OutgoingMessage]


def too_large_dead_letters(dead_letter_topic: str, serde: RecordSerde[DeadLetter] | None = None) -> TooLarge:
    """The sink's replacement for a too-large message: a dead letter on ``dead_letter_topic``."""
    letters = serde or dead_letter_serde()

    def replace(m: OutgoingMessage, reason: str) -> OutgoingMessage:
        return too_large_dead_letter(m, dead_letter_topic, reason, letters)

    return replace


def too_large_dead_letter(m: OutgoingMessage, dead_letter_topic: str, reason: str,
                          serde: RecordSerde[DeadLetter] | None = None) -> OutgoingMessage:
    """A dead letter in place of ``m``, which Kafka refused as too large; keeps KEPT_BYTES of its bytes.

    A dead letter that is itself too large keeps its origin and reason with a truncated value.
    """
    serde = serde or dead_letter_serde()
    size = len(m.key or b"") + len(m.value or b"")
    if m.topic == dead_letter_topic and m.value is not None:
        letter = serde.decode(m.value)
        letter = dataclasses.replace(
            letter, key=None if letter.key is None else letter.key[:KEPT_BYTES],
            value=None if letter.value is None else letter.value[:KEPT_BYTES],
            message=f"{letter.message} [value truncated to {KEPT_BYTES} bytes of {len(letter.value or b'')}: "
                    f"too large for Kafka ({reason})]")
    else:
        letter = DeadLetter(source_topic=m.topic, partition=-1, offset=-1,
                            key=None if m.key is None else m.key[:KEPT_BYTES], value=None,
                            error_kind="output-too-large",
                            message=f"a {size}-byte message for {m.topic} was not produced: {reason}",
                            time=int(time.time() * 1000))
    log.warning("%s message of %d bytes is too large for Kafka; sent to %s instead", m.topic, size,
                dead_letter_topic)
    return OutgoingMessage(dead_letter_topic, letter.key, serde.encode(letter))
