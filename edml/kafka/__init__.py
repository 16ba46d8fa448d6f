"""Kafka plumbing: client configs, topics as code, and the local broker."""
