"""Bad payloads are typed DecodeErrors with a reason, never a crash.

The scorer turns a DecodeError into a dead letter (kind + message) and keeps going; any other
exception would stop the dataflow, so every test here also checks that nothing else escapes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from edml.schemas import records, serde
from edml.schemas.serde import DecodeError
from edml.trainer.records import trip_serde
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.records import serde_of
from tests.unit.test_schemas import SAMPLES, model_record, trip

ALL_KINDS = {
    "null-value", "empty", "truncated", "bad-magic", "unknown-fingerprint", "bad-utf8", "malformed",
    "trailing-bytes", "schema-mismatch",
}


def kind_of(s: serde.AvroSerde[Any], payload: Any) -> str:
    """The DecodeError kind; fails the test if decoding succeeds or raises anything else."""
    with pytest.raises(DecodeError) as info:
        s.decode(payload)
    assert info.value.kind in ALL_KINDS
    assert info.value.message  # a reason a human can read in the dead letter
    assert str(info.value).startswith(info.value.kind + ": ")
    return info.value.kind


def test_decode_error_is_a_value_error_with_kind_and_message() -> None:
    e = DecodeError("truncated", "body ends early")
    assert isinstance(e, ValueError)
    assert (e.kind, e.message, str(e)) == ("truncated", "body ends early", "truncated: body ends early")


def test_none_is_a_null_value() -> None:
    assert kind_of(trip_serde(), None) == "null-value"


def test_empty_bytes() -> None:
    assert kind_of(trip_serde(), b"") == "empty"


@pytest.mark.parametrize("length", range(1, 10))
def test_shorter_than_the_header_is_truncated(length: int) -> None:
    payload = trip_serde().encode(trip())
    assert kind_of(trip_serde(), payload[:length]) == "truncated"


@pytest.mark.parametrize("magic", [b"\x00\x01", b"\xc3\x00", b"\xc2\x01", b"{\""])
def test_wrong_magic(magic: bytes) -> None:
    payload = trip_serde().encode(trip())
    assert kind_of(trip_serde(), magic + payload[2:]) == "bad-magic"


def test_confluent_framed_payload_is_bad_magic_for_the_single_object_reader() -> None:
    body = trip_serde().encode_body(trip())
    assert kind_of(trip_serde(), b"\x00\x00\x00\x00\x07" + body) == "bad-magic"


def test_unknown_fingerprint_names_the_fingerprint() -> None:
    payload = bytearray(trip_serde().encode(trip()))
    payload[2] ^= 0xFF
    with pytest.raises(DecodeError) as info:
        trip_serde().decode(bytes(payload))
    assert info.value.kind == "unknown-fingerprint"
    assert bytes(payload[2:10]).hex() in info.value.message


def test_another_records_payload_is_an_unknown_fingerprint() -> None:
    """A prediction on the trips topic is refused by header, before any body byte is read."""
    payload = serde.prediction_serde().encode(SAMPLES["Prediction"])
    assert kind_of(trip_serde(), payload) == "unknown-fingerprint"


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_truncation_of_a_valid_payload_is_a_decode_error(name: str) -> None:
    s = serde_of(name)
    payload = s.encode(SAMPLES[name])
    for length in range(len(payload)):
        assert kind_of(s, payload[:length]) in {"empty", "truncated", "malformed"}, length


def test_truncated_body_kind() -> None:
    payload = trip_serde().encode(trip())
    assert kind_of(trip_serde(), payload[:-1]) == "truncated"
    assert kind_of(trip_serde(), payload[:11]) == "truncated"


@pytest.mark.parametrize("extra", [b"\x00", b"\x00" * 7, b"garbage"])
def test_trailing_bytes(extra: bytes) -> None:
    s = trip_serde()
    with pytest.raises(DecodeError) as info:
        s.decode(s.encode(trip()) + extra)
    assert info.value.kind == "trailing-bytes"
    assert str(len(extra)) in info.value.message


def test_invalid_utf8_in_a_string() -> None:
    s = trip_serde()
    record = dataclasses.replace(trip(), trip_id="abc")
    payload = bytearray(s.encode(record))
    start = 10 + 1  # after the header and the one-byte zigzag length of "abc"
    assert payload[start : start + 3] == b"abc"
    payload[start] = 0xFF
    assert kind_of(s, bytes(payload)) == "bad-utf8"


def test_invalid_utf8_in_a_nested_string() -> None:
    s = serde.model_record_serde()
    record = model_record()
    payload = s.encode(record)
    needle = b"pickup_zone"  # a TensorSpec name inside the signature
    at = payload.index(needle)
    broken = payload[:at] + b"\xc3\x28" + payload[at + 2 :]  # an invalid two-byte sequence
    assert kind_of(s, broken) == "bad-utf8"


def test_enum_index_out_of_range_is_malformed() -> None:
    s = serde.model_status_serde()
    record = records.ModelStatus("m", "v", "received", "p", 0)
    payload = bytearray(s.encode(record))
    enum_at = 10 + 2 + 2  # "m" and "v" are each a length byte plus one byte
    assert payload[enum_at] == 0  # zigzag 0: "received"
    payload[enum_at] = 2 * 40  # zigzag 40: no such symbol
    assert kind_of(s, bytes(payload)) in {"malformed", "truncated"}


def test_negative_string_length_is_a_decode_error() -> None:
    s = trip_serde()
    payload = bytearray(s.encode(trip()))
    payload[10] = 0x03  # zigzag -2
    assert kind_of(s, bytes(payload)) in {"malformed", "truncated"}


def test_bytearray_and_memoryview_decode_like_bytes() -> None:
    s = trip_serde()
    payload = s.encode(trip())
    assert s.decode(bytearray(payload)) == trip()
    assert s.decode(memoryview(payload)) == trip()


def test_a_str_is_malformed_not_a_crash() -> None:
    assert kind_of(trip_serde(), "c3 01 not bytes") == "malformed"


def test_decode_error_does_not_chain_the_internal_exception() -> None:
    """Dead letters carry the message; no fastavro traceback is attached to the error."""
    payload = trip_serde().encode(trip())
    with pytest.raises(DecodeError) as info:
        trip_serde().decode(payload[:-3])
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --- fuzzing: any bytes -> a record or a DecodeError, nothing else -------------------------------
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_error(s: serde.AvroSerde[Any], payload: bytes) -> None:
    try:
        record = s.decode(payload)
    except DecodeError as e:
        assert e.kind in ALL_KINDS
        return
    assert isinstance(record, s.record_type)


@FUZZ
@given(payload=st.binary(max_size=200))
def test_any_bytes(payload: bytes) -> None:
    for name in ("TripPickup", "ModelRecord"):
        _decode_or_error(serde_of(name), payload)


@FUZZ
@given(name=st.sampled_from(list(SAMPLES)), body=st.binary(max_size=200))
def test_any_body_behind_a_valid_header(name: str, body: bytes) -> None:
    """Random bodies reach the Avro reader itself (random headers almost never would)."""
    s = serde_of(name)
    _decode_or_error(s, s.encode(SAMPLES[name])[:10] + body)


@FUZZ
@given(name=st.sampled_from(list(SAMPLES)), data=st.data())
def test_any_corruption_of_a_valid_payload(name: str, data: st.DataObject) -> None:
    """Flip, insert or delete bytes of a real payload: varints, lengths and unions go wrong."""
    s = serde_of(name)
    payload = bytearray(s.encode(SAMPLES[name]))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(10, max(10, len(payload) - 1)))
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "flip" and at < len(payload):
            payload[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif at < len(payload):
            del payload[at]
    _decode_or_error(s, bytes(payload))


def test_huge_declared_lengths_fail_fast_without_allocating() -> None:
    """A varint claiming a 2^62-byte string or a 2^62-item array must not hang or exhaust memory."""
    huge = b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"  # zigzag of a large positive long
    trip_header = trip_serde().encode(trip())[:10]
    assert kind_of(trip_serde(), trip_header + huge + b"abc") in {"truncated", "malformed"}
    mr = serde.model_record_serde()
    prefix = mr.encode(model_record())
    # the signature's inputs array starts after the 5 leading fields and artifact_format
    first = model_record()
    head = mr.encode_body(dataclasses.replace(first, signature=records.ModelSignature([], [])))
    assert kind_of(mr, prefix[:10] + head[: head.index(b"savedmodel-tar-gz") + 17] + huge) in {"truncated", "malformed"}
