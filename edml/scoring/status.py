"""Model status events: what this process did with each model record."""

from __future__ import annotations

import logging
import os
import socket
import time

from edml.core.config import Settings
from edml.core.metrics import MODEL_STATUS
from edml.kafka.clients import make_producer
from edml.schemas.records import ModelStatus
from edml.schemas.serde import encode_model_key
from edml.schemas.wire import topic_serdes

log = logging.getLogger("edml.models")


def process_name() -> str:
    """``host:pid`` of this process, as status events name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class StatusReporter:
    """Produces ModelStatus events (key: model name) and logs them."""

    def __init__(self, settings: Settings, process: str | None = None) -> None:
        self._producer = make_producer(settings)
        self._topic = settings.topics.model_status
        self._serde = topic_serdes(settings).model_status
        self.process = process or process_name()

    def report(self, model_name: str, version: str, status: str, reason: str = "") -> None:
        """Send one status event (asynchronously; ``flush`` waits)."""
        event = ModelStatus(model_name=model_name, version=version, status=status, reason=reason,
                            process=self.process, time=int(time.time() * 1000))
        level = logging.WARNING if status in ("rejected", "retrying") else logging.INFO
        log.log(level, "model %s %s: %s%s", model_name, version, status, f" ({reason})" if reason else "")
        MODEL_STATUS.labels(status).inc()
        self._producer.produce(self._topic, key=encode_model_key(model_name), value=self._serde.encode(event))
        self._producer.poll(0)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every status event is delivered."""
        self._producer.flush(timeout)
