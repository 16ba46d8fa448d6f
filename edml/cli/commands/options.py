"""Options shared by many commands, and the settings they resolve to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edml.core.config import Settings, load_settings

BootstrapOpt = Annotated[
    str | None, typer.Option("--bootstrap-servers", "-b", help="Kafka bootstrap servers (env EDML_BOOTSTRAP_SERVERS).")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Config file (default edml.toml, env EDML_CONFIG).")]
MetricsHostOpt = Annotated[
    str | None,
    typer.Option("--metrics-host", help="Address /metrics binds (env EDML_METRICS_HOST; default 0.0.0.0, every "
                 "interface; 127.0.0.1: this host only)."),
]
StateDirOpt = Annotated[Path | None, typer.Option("--state-dir", help="State folder (env EDML_STATE_DIR).")]


def settings_from(config: Path | None = None, **overrides: object) -> Settings:
    """Settings from the config file and env, with the given flag values on top."""
    return load_settings(config).with_overrides(**overrides)
