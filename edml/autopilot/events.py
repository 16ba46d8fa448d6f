"""Every step of the controller as an :class:`AutopilotEvent` on the pipeline's autopilot topic, and its history.

The topic (one partition, keyed by pipeline) is the controller's log for people: ``edml autopilot
status`` prints it. Each step is also counted in ``edml_autopilot_steps``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from edml.core import metrics
from edml.core.config import Settings
from edml.kafka.clients import make_producer
from edml.kafka.reading import read_decoded
from edml.schemas.records import AutopilotEvent
from edml.schemas.serde import DecodeError
from edml.schemas.wire import topic_serdes

log = logging.getLogger("edml.autopilot")
DELIVERY_TIMEOUT_S = 30.0


class EventLog:
    """Writes the controller's events onto ``settings.topics.autopilot`` and waits for each to be acknowledged."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.serde = topic_serdes(settings).autopilot
        self.producer = make_producer(settings, linger_ms=0)

    def write(self, event: AutopilotEvent) -> None:
        """Produce ``event``; raises RuntimeError when the broker does not acknowledge it."""
        errors: list[object] = []
        self.producer.produce(self.settings.topics.autopilot, key=event.pipeline.encode(),
                              value=self.serde.encode(event), on_delivery=lambda err, _m: errors.append(err))
        if self.producer.flush(DELIVERY_TIMEOUT_S) or not errors or errors[0] is not None:
            raise RuntimeError(f"autopilot topic {self.settings.topics.autopilot}: no acknowledgement "
                               f"({errors[0] if errors else 'timeout'})")
        metrics.AUTOPILOT_STEPS.labels(event.pipeline, event.step).inc()
        log.info("%s %s: %s", event.pipeline, event.step, event.reason)


def read_history(settings: Settings, pipeline: str | None = None) -> list[AutopilotEvent]:
    """Every event on the autopilot topic (of one pipeline), in the order they were written."""
    events = read_decoded(settings, settings.topics.autopilot, topic_serdes(settings).autopilot.decode, DecodeError,
                          "an AutopilotEvent")
    return [e for e in events if pipeline is None or e.pipeline == pipeline]


def format_event(event: AutopilotEvent) -> str:
    """One line: time (UTC), run, step, versions, the reason, then the figures."""
    when = datetime.fromtimestamp(event.time / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    versions = " ".join(f"{k}={v}" for k, v in (("champion", event.champion), ("candidate", event.candidate)) if v)
    figures = ", ".join(f"{k} {v:.4g}" for k, v in sorted(event.figures.items()))
    parts = [when, event.run_id, f"{event.step:9}", versions, event.reason]
    line = "  ".join(p for p in parts if p)
    return f"{line} [{figures}]" if figures else line


def format_history(events: list[AutopilotEvent]) -> list[str]:
    """The history as lines, a blank line between runs."""
    lines: list[str] = []
    for i, event in enumerate(events):
        if i and event.run_id != events[i - 1].run_id:
            lines.append("")
        lines.append(format_event(event))
    return lines
