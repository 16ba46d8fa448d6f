"""The scorer runtime: batch scoring, the serving set, the model loader and store, the model-topic
subscriber, the status reporter, trust, the re-use of first-emission bytes and the service that
wires them for the scoring dataflow."""
