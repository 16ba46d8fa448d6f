"""The peer: a Quix Streams application doing edml's job, one message at a time.

It decodes each TripPickup (Avro single-object: the 10-byte header is skipped, the body read
with fastavro and the schema file), calls the same SavedModel once per message (Quix Streams'
API hands the application one message at a time), encodes a Prediction (Avro single-object
with the header the bench driver passes in) and produces it keyed by trip id.

It runs in its own venv (bench/peer-requirements.txt) and imports nothing of edml, so edml's
pinned dependencies never meet Quix Streams' own. Stops after ``--count`` outputs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    """Consume trips, score each with the SavedModel, produce predictions, until --count."""
    import fastavro
    import numpy as np
    import tensorflow as tf
    from quixstreams import Application

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--trips", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--saved-model", required=True)
    parser.add_argument("--trip-schema", required=True)
    parser.add_argument("--prediction-schema", required=True)
    parser.add_argument("--prediction-header", required=True, help="hex of the single-object header")
    parser.add_argument("--model-version", default="v1")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()

    trip_schema = fastavro.parse_schema(_without_logical_types(json.load(open(args.trip_schema))))
    prediction_schema = fastavro.parse_schema(_without_logical_types(json.load(open(args.prediction_schema))))
    header = bytes.fromhex(args.prediction_header)
    model = tf.saved_model.load(args.saved_model)
    fn = model.signatures["serving_default"]
    inputs = {name: spec.dtype for name, spec in fn.structured_input_signature[1].items()}
    output = next(iter(fn.structured_outputs))

    def score(value: bytes) -> bytes:
        trip = fastavro.schemaless_reader(io.BytesIO(value[10:]), trip_schema, None)
        tensors = {name: tf.constant([trip[name]], dtype=dtype) for name, dtype in inputs.items()}
        predicted = float(np.asarray(fn(**tensors)[output]).reshape(-1)[0])
        now = int(time.time() * 1000)
        buf = io.BytesIO()
        buf.write(header)
        fastavro.schemaless_writer(buf, prediction_schema, {
            "trip_id": trip["trip_id"], "predicted_duration_s": predicted, "model_name": "trip-duration",
            "model_version": args.model_version, "event_time": trip["pickup_time"], "scored_at": now,
            "latency_ms": 0.0, "role": "champion",
        })
        return buf.getvalue()

    app = Application(broker_address=args.bootstrap, consumer_group=f"bench-peer-{time.time_ns()}",
                      auto_offset_reset="earliest", state_dir=args.state_dir, use_changelog_topics=False,
                      producer_extra_config={"linger.ms": 2, "compression.type": "lz4"})
    trips = app.topic(args.trips, key_deserializer="bytes", value_deserializer="bytes")
    out = app.topic(args.out, key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(trips)
    sdf = sdf.apply(score)
    sdf.to_topic(out)
    app.run(count=args.count, timeout=60)


def _without_logical_types(node):  # noqa: ANN001, ANN202 - JSON
    # edml writes epoch millis as plain longs: read and write them as ints here too
    if isinstance(node, dict):
        return {k: _without_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_without_logical_types(v) for v in node]
    return node


if __name__ == "__main__":
    main()
