"""The ``edml`` command line: nothing inside edml imports it."""

from edml.cli.root import app, main

__all__ = ["app", "main"]
