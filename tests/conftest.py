"""Shared fixtures: a real Kafka broker for the session, and per-test topics."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edml.core.config import Settings, Topics


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real broker: EDML_TEST_BOOTSTRAP_SERVERS, or one started here."""
    given = os.environ.get("EDML_TEST_BOOTSTRAP_SERVERS")  # a broker of your own
    if given:
        yield given
        return
    from edml.kafka.local_broker import LocalBroker
    from tests.helpers.ports import free_ports

    port = free_ports(2)  # client and controller ports, reserved together
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"), port=port, controller_port=port + 1)
    broker.up()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.down()


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own topic names (created) and state folder."""
    from edml.kafka.topics import create_topics

    prefix = f"t{uuid.uuid4().hex[:8]}-"
    s = Settings(
        bootstrap_servers=kafka_bootstrap,
        topics=Topics().with_prefix(prefix),
        partitions=2,
        state_dir=tmp_path / "state",
    )
    create_topics(s)
    return s


def _train_small_fixture(tmp_path_factory: pytest.TempPathFactory, name: str, seed: int, kind: str = "full",
                         **sizes: int) -> Path:
    from edml.trainer.kinds import model_kind
    from edml.trainer.train import train_small

    return train_small(tmp_path_factory.mktemp(name), seed=seed, kind=model_kind(kind), **sizes).out_dir


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trained model's output folder (saved_model/, metrics.json, golden.json, reference.json)."""
    return _train_small_fixture(tmp_path_factory, "model-v1", seed=1)


@pytest.fixture(scope="session")
def trained_model_dir_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like ``trained_model_dir`` with another seed (other data and weights), so its predictions differ."""
    return _train_small_fixture(tmp_path_factory, "model-v2", seed=2)


@pytest.fixture(scope="session")
def trained_basic_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ``trip-duration-basic``: the taxi-routed fallback, distance and time only (no zone, no borough)."""
    return _train_small_fixture(tmp_path_factory, "basic-v1", seed=1, kind="basic", n=8_000, epochs=4)


@pytest.fixture(scope="session")
def trained_airport_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ``trip-duration-airport``: the wide & deep model on the airport trips of 30,000 generated trips."""
    return _train_small_fixture(tmp_path_factory, "airport-v1", seed=1, kind="airport", n=30_000, epochs=6)


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Confluent API URL of a real schema registry: EDML_TEST_SCHEMA_REGISTRY_URL, or Apicurio started here.

    Started once per session (a Quarkus boot) on a free port; ready when its health check says so.
    """
    given = os.environ.get("EDML_TEST_SCHEMA_REGISTRY_URL")  # a registry of your own
    if given:
        yield given
        return
    from edml.schemas.local_registry import start_on_free_port

    registry = start_on_free_port(tmp_path_factory.mktemp("registry"))
    try:
        yield registry.url
    finally:
        registry.down()


@pytest.fixture
def registry_settings(settings: Settings, schema_registry: str) -> Settings:
    """``settings`` in registry mode: every topic in the Confluent wire format, subjects per test."""
    from edml.schemas.wire import with_registry

    return with_registry(settings, schema_registry)
