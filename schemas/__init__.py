"""Avro schemas of every record on every topic, their dataclasses, and the serde."""
