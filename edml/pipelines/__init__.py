"""Pipelines: a topic, its schema and a model, declared in TOML instead of written in code.

``declaration`` reads and checks declarations, ``constraints`` checks batches of columns against
per-field constraints, ``signature`` matches a model's signature to a pipeline, ``predictions``
derives the prediction record from a signature. The taxi trip-duration system is the built-in
pipeline ``taxi`` (``taxi.toml`` here).
"""
