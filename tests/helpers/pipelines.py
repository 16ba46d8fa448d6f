"""A pipeline declared only in a test: its schema and TOML in a folder of the test, its topics created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edml.core.config import Settings
from edml.kafka.topics import create_topics
from edml.pipelines.bound import BoundPipeline, bind_pipeline, pipeline_settings
from edml.pipelines.declaration import load_pipeline


def declare_pipeline(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                     schema_file: str, schema: dict[str, Any], declaration: str) -> tuple[Settings, BoundPipeline]:
    """Declare ``name`` (``declaration`` beside ``schema_file``) for this test; its settings and bound pipeline."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / schema_file).write_text(json.dumps(schema))
    (folder / f"{name}.toml").write_text(declaration)
    monkeypatch.setenv("EDML_PIPELINES_DIR", str(folder))
    bound = bind_pipeline(load_pipeline(name))
    s = pipeline_settings(settings, bound.pipeline)
    create_topics(s)
    return s, bound
