"""Decoding a topic's (or an archive's) messages: the undecodable ones are skipped, counted and named in the log."""

from __future__ import annotations

import json
import logging

import pytest

from edml.kafka.messages import SourceMessage
from edml.kafka.reading import decode_messages


def _msg(offset: int, value: bytes | None) -> SourceMessage:
    return SourceMessage("scores", 1, offset, b"k", value, 0)


def test_undecodable_messages_are_skipped_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    messages = [_msg(0, b'{"a": 1}'), _msg(1, b"not json"), _msg(2, b'{"a": 2}'), _msg(3, None)]
    with caplog.at_level(logging.WARNING, logger="edml.kafka"):
        decoded, skipped = decode_messages(messages, json.loads, (ValueError, TypeError), log_as="a JSON object")
    assert [(m.offset, v) for m, v in decoded] == [(0, {"a": 1}), (2, {"a": 2})] and skipped == 2
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["scores 1/1 is not a JSON object",
                                                                      "scores 1/3 is not a JSON object"]


def test_without_a_name_nothing_is_logged_and_other_errors_are_not_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edml.kafka"):
        _, skipped = decode_messages([_msg(0, b"x")], json.loads, ValueError)
    assert skipped == 1 and caplog.records == []
    with pytest.raises(TypeError):
        decode_messages([_msg(0, None)], json.loads, ValueError)
