"""Which model records the scorer trusts: with a public key configured, only signed ones."""

from __future__ import annotations

from collections.abc import Callable

from edml.core.config import Settings
from edml.schemas.records import ModelRecord


def record_check(settings: Settings) -> Callable[[ModelRecord], None] | None:
    """A check that rejects unsigned or wrongly signed records when a public key is set."""
    if not settings.model_public_key:
        return None
    from edml.model_topic.signing import SignatureInvalid, check_public_key, read_key, verify_record
    from edml.scoring.loader import ModelRejected

    public_key = read_key(settings.model_public_key)
    # a key that does not parse is the operator's mistake: say so at start, not once per record
    check_public_key(public_key)

    def check(record: ModelRecord) -> None:
        try:
            verify_record(record, public_key)
        except SignatureInvalid as e:
            raise ModelRejected(f"record signature: {e}") from None

    return check
