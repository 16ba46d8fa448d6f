"""edml: event-driven machine learning on Kafka with Bytewax."""

__version__ = "0.1.0"
