"""``edml bench``: throughput, latency and model-swap figures beside the ceiling and a peer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edml.core.errors import OperatorError


def bench(
    quick: Annotated[bool, typer.Option(help="Fewer trips and variants: a smoke run of about 3 minutes.")] = False,
    out: Annotated[Path | None, typer.Option(help="Results folder (default bench/results in the checkout).")] = None,
) -> None:
    """Benchmark edml serve against the Kafka passthrough ceiling and a Quix Streams peer on a local broker."""
    repo = Path(__file__).resolve().parents[3]
    if not (repo / "bench" / "run.py").is_file():
        raise OperatorError("edml bench runs from a source checkout (it needs bench/ beside the edml package)")
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from bench.run import main
    from edml.cli.progress import following_logs

    argv = ["--quick"] if quick else []
    if out is not None:
        argv += ["--out", str(out)]
    # on a terminal, a spinner with the running phase above the log; in CI the log alone
    with following_logs("bench: starting", logger="edml.bench"):
        code = main(argv)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``bench``."""
    app.command("bench")(bench)
