"""``edml registry up|down|status``: the local schema registry (Apicurio Registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edml.cli.commands.local_service import ServiceCommands, service_app


def _registry(home: Path, port: int):  # noqa: ANN202 - imported lazily
    from edml.core.local_service import free_port
    from edml.schemas.local_registry import LocalRegistry

    remembered = home / "registry.port"
    if port == 0:
        try:
            port = int(remembered.read_text())
        except (OSError, ValueError):
            port = free_port()
    return LocalRegistry(home=home, port=port)


def _remember_port(registry: Any, home: Path) -> None:
    (home / "registry.port").write_text(str(registry.port))


registry_app = service_app(
    ServiceCommands("schema registry", _registry, lambda registry: registry.url, Path(".edml/registry"), 8081,
                    "HTTP port on 127.0.0.1 (0: a free one, remembered in --home).", other_port=0,
                    after_up=_remember_port, healthy=lambda registry: registry.ready()),
    "Run a local Confluent-compatible schema registry (Apicurio) for development.",
    "Fetch Apicurio Registry if needed and start it; a no-op when it already runs. Prints the URL to set as "
    "[schema_registry] url (or EDML_SCHEMA_REGISTRY_URL).",
)


def register(app: typer.Typer) -> None:
    """Add the registry group."""
    app.add_typer(registry_app, name="registry")
