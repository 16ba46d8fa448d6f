"""One error base, two kinds: what the CLI prints as one line, and with which exit code.

- ``OperatorError``: a mistake the operator can fix (bad config, busy port, missing topic): exit 2.
- ``Refusal``: edml declined to do what was asked (gate refused, broken model folder, version
  exists, store unreachable): exit 1.

Errors that are data stay values with a reason (a dead letter, a rejected model's status): they
are not raised to the CLI. A class deriving from both kinds counts as an operator mistake.
"""

from __future__ import annotations


class EdmlError(Exception):
    """An error the CLI reports as one line; ``reason`` is that line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OperatorError(EdmlError):
    """A mistake the operator can fix (bad config, missing tool, unreachable broker): exit 2."""


class Refusal(EdmlError):
    """edml declined the request for a reason the operator should read (gate, broken model): exit 1."""


def exit_for(error: EdmlError, command: str | None = None) -> tuple[int, str]:
    """The exit code and the one line the CLI prints for ``error`` (operator mistakes win over refusals)."""
    reason = " ".join(str(error).splitlines())  # one line, even when a library's message had several
    if isinstance(error, OperatorError):
        return 2, f"edml: error: {reason}"
    return 1, f"edml: {command + ' ' if command else ''}refused: {reason}"
