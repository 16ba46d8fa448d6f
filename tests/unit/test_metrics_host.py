"""The metrics server's address: a setting (file, EDML_METRICS_HOST, --metrics-host), every interface by default."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edml.cli.commands.options import settings_from
from edml.core.config import load_settings
from edml.core.metrics import serve_metrics
from tests.helpers.ports import free_port


def test_default_is_every_interface(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "none.toml", env={}).metrics_host == "0.0.0.0"


def test_file_then_env_then_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "edml.toml"
    config.write_text('metrics_host = "127.0.0.1"\n')
    assert load_settings(config, env={}).metrics_host == "127.0.0.1"
    assert load_settings(config, env={"EDML_METRICS_HOST": "10.1.2.3"}).metrics_host == "10.1.2.3"
    monkeypatch.setenv("EDML_METRICS_HOST", "10.1.2.3")
    assert settings_from(config, metrics_host="127.0.0.2").metrics_host == "127.0.0.2"


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status)


def test_the_server_binds_only_the_given_address() -> None:
    port = free_port()
    server = serve_metrics(port, lambda: True, host="127.0.0.2")
    try:
        assert _get(f"http://127.0.0.2:{port}/healthz") == 200
        with pytest.raises(urllib.error.URLError):
            _get(f"http://127.0.0.1:{port}/healthz")
    finally:
        server.shutdown()
        server.server_close()
