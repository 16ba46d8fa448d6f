"""Benchmarks of edml beside the ceiling (a Bytewax passthrough) and a peer (Quix Streams)."""
