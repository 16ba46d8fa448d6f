"""Micro-benchmark: the Confluent wire format written and read by edml's codec vs confluent-kafka's Avro serdes.

Both talk to the same real registry (``--url``, or a local Apicurio started here) through
confluent-kafka's ``SchemaRegistryClient``; only the byte work differs. Prints records per
second for predictions written as the scorer writes them (a batch of columns) and record by
record, and trips read as the scorer reads them (a batch) and record by record.

    .venv/bin/python -m bench.registry_serde [--url URL] [--n 20000]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from edml.schemas.records import Prediction
from edml.schemas.serde import load_schema_json
from edml.schemas.wire import topic_serdes, with_registry
from edml.trainer.generator import generate_trips
from edml.trainer.records import trip_serde

from edml.core.config import Settings
from edml.kafka.messages import SourceMessage
from edml.pipelines.bound import open_pipeline
from edml.pipelines.events import EventDecoder


def rate(n: int, work: Callable[[], object], repeat: int = 3) -> float:
    """Records per second of the best of ``repeat`` runs of ``work`` (which handles ``n`` records)."""
    best = min(_timed(work) for _ in range(repeat))
    return n / best


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run(url: str, n: int) -> dict[str, float]:
    settings = with_registry(Settings(), url)
    serdes = topic_serdes(settings)
    topic = settings.topics.predictions
    ctx = SerializationContext(topic, MessageField.VALUE)
    client = serdes.predictions.client  # type: ignore[attr-defined]
    ids = [f"trip-{i}" for i in range(n)]
    columns = {"trip_id": ids, "predicted_duration_s": np.linspace(60, 3600, n), "model_name": "trip-duration",
               "model_version": "v1", "event_time": np.arange(n, dtype=np.int64) + 1_700_000_000_000,
               "scored_at": 1_700_000_000_500, "latency_ms": np.full(n, 500.0), "role": "champion"}
    records = [Prediction(ids[i], float(columns["predicted_duration_s"][i]), "trip-duration", "v1",
                          int(columns["event_time"][i]), 1_700_000_000_500, 500.0, "champion") for i in range(n)]
    serializer = AvroSerializer(client, _schema_text("Prediction"), to_dict=lambda r, _c: dataclasses.asdict(r))
    edml_batch = serdes.predictions.encode_columns(columns, n)
    assert [serializer(r, ctx) for r in records[:100]] == edml_batch[:100]  # the same bytes

    trips = [g.pickup for g in generate_trips(n, seed=1)]
    trip_wire = serdes.for_serde(settings.topics.trips, trip_serde())
    payloads = [trip_wire.encode(t) for t in trips]
    messages = [SourceMessage(settings.topics.trips, 0, i, None, p, 0) for i, p in enumerate(payloads)]
    taxi = open_pipeline(None, settings)  # the scorer's decoder of the taxi pipeline's events
    decoder = EventDecoder(taxi, serdes.for_schema(settings.topics.trips, taxi.schema))
    assert len(decoder.decode_batch(messages)) == n  # every trip read, none dead-lettered
    deserializer = AvroDeserializer(client)
    trip_ctx = SerializationContext(settings.topics.trips, MessageField.VALUE)
    return {
        "write predictions, edml columnar (a batch)": rate(n, lambda: serdes.predictions.encode_columns(columns, n)),
        "write predictions, edml record by record": rate(n, lambda: [serdes.predictions.encode(r) for r in records]),
        "write predictions, confluent AvroSerializer": rate(n, lambda: [serializer(r, ctx) for r in records]),
        "read trips, edml EventDecoder (a batch)": rate(n, lambda: decoder.decode_batch(messages)),
        "read trips, edml record by record": rate(n, lambda: [trip_wire.decode(p) for p in payloads]),
        "read trips, confluent AvroDeserializer": rate(n, lambda: [deserializer(p, trip_ctx) for p in payloads]),
    }


def _schema_text(name: str) -> str:
    import json

    return json.dumps(load_schema_json(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a Confluent-compatible registry (default: a local Apicurio started here)")
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    registry = None
    url = args.url
    if not url:
        from edml.schemas.local_registry import start_on_free_port

        registry = start_on_free_port(Path(tempfile.mkdtemp(prefix="edml-registry-bench-")))
        url = registry.url
    try:
        for label, per_s in run(url, args.n).items():
            print(f"{label:48} {per_s / 1000:8.1f}k records/s")
    finally:
        if registry is not None:
            registry.down()


if __name__ == "__main__":
    main()
