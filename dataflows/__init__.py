"""The Bytewax dataflows: scoring, evaluation."""
