"""Prometheus metrics of a scoring process, and the HTTP endpoint that serves them.

``/metrics`` is the Prometheus text format; ``/healthz`` answers 200 once a model is active
and 503 before (a readiness probe: a scorer without a model holds its partitions).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

EVENTS_IN = Counter("edml_events_in", "Events read from the input topic")
PREDICTIONS_OUT = Counter("edml_predictions_out", "Predictions produced", ["role"])
PREDICTIONS_BY_MODEL = Counter("edml_predictions_by_model", "Predictions of routed pipelines per model (or ensemble)",
                               ["model", "role"])
ALERTS = Counter("edml_alerts", "Predictions an alert rule fired on", ["pipeline", "rule"])
DEAD_LETTERS = Counter("edml_dead_letters", "Events sent to the dead-letter topic", ["kind"])
BATCH_SIZE = Histogram("edml_batch_size", "Trips per scored batch",
                       buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000))
SCORING_LATENCY = Histogram(
    "edml_scoring_latency_seconds",
    "From the trip's Kafka timestamp to its prediction, for the oldest trip of each batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MODEL_CALL = Histogram("edml_model_call_seconds", "One model call on a batch",
                       buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
MODEL_LOAD = Histogram("edml_model_load_seconds", "Fetch, verify, unpack, load and warm up of a model",
                       buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
ACTIVE_MODEL = Gauge("edml_active_model_info", "1 for the model version that serves", ["model_name", "version", "role"])
HELD_EVENTS = Gauge("edml_held_events", "Events waiting in held partitions (no model active yet)",
                    ["topic", "partition"])
MODEL_FAILURES = Counter("edml_model_failures", "Rows a serving model failed to score (dead letters for the champion)",
                         ["role", "kind"])
MODEL_FALLBACK = Gauge("edml_model_fallback", "1 while the process serves a version other than the desired one "
                       "(last known good), 0 otherwise", ["model_name"])
MODEL_STATUS = Counter("edml_model_status", "Model status events of this process", ["status"])
SOURCE_LAG = Gauge("edml_source_lag", "Events behind: the partition's high watermark minus the next offset to read",
                   ["topic", "partition"])
TOPIC_CHANGES = Counter("edml_source_topic_changes", "Source partitions whose topic changed under the recovery state "
                        "(re-created, offsets out of range, partition gone, partitions added)",
                        ["topic", "partition", "change"])


def set_active_model(name: str, champion: str | None, challengers: tuple[str, ...] = ()) -> None:
    """Make ``edml_active_model_info`` show exactly the serving versions."""
    ACTIVE_MODEL.clear()
    if champion is not None:
        ACTIVE_MODEL.labels(name, champion, "champion").set(1)
    for version in challengers:
        ACTIVE_MODEL.labels(name, version, "challenger").set(1)


def serve_metrics(port: int, healthy: Callable[[], bool], host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` (settings' ``metrics_host``) from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.startswith("/healthz"):
                ok = healthy()
                body = b"ok\n" if ok else b"no active model\n"
                self._send(200 if ok else 503, body, "text/plain")
            elif self.path.startswith("/metrics") or self.path == "/":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="edml-metrics", daemon=True).start()
    return server

# the continuous-training controller (edml autopilot)
AUTOPILOT_STEPS = Counter("edml_autopilot_steps", "Steps of the continuous-training controller (edml autopilot)",
                          ["pipeline", "step"])
AUTOPILOT_DECISIONS = Counter("edml_autopilot_decisions", "How the controller's runs ended: promoted, retired, "
                              "refused, skipped, failed or abandoned", ["pipeline", "decision"])
AUTOPILOT_TRAINING = Gauge("edml_autopilot_training", "1 while the controller trains or waits for a candidate",
                           ["pipeline"])
