"""The ``edml`` command: one entry point for every job."""

from __future__ import annotations

import importlib
import sys

import typer

from edml.core.errors import OperatorError

app = typer.Typer(
    help="edml: event-driven machine learning. Score a Kafka stream of taxi trips with the "
    "model on a compacted model topic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module adds its commands; heavy imports (TensorFlow, Bytewax) stay inside the commands
# so that `edml --help` is instant.
COMMAND_MODULES = [
    "edml.cli.commands.kafka",
    "edml.cli.commands.registry",
    "edml.cli.commands.serve",
    "edml.cli.commands.data",
    "edml.cli.commands.train",
    "edml.cli.commands.publish",
    "edml.cli.commands.replay",
    "edml.cli.commands.evaluate",
    "edml.cli.commands.bench",
    "edml.cli.commands.demo",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Run the CLI; an operator mistake prints one line and exits 2."""
    try:
        app()
    except OperatorError as e:
        print(f"edml: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
